"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL where a module asks),
settings without any .env.

A module (or test) marked `@pytest.mark.both_stores` runs every test that uses
`database_url` (or `db`, `ledger`) once on SQLite and once on PostgreSQL. The
PostgreSQL runs share one throwaway database per test session,
`lokiz_test_<random>`, dropped afterwards; each test gets its own schema in it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

from core.credits import CreditLedger
from core.settings import Settings, load_settings
from core.storage import Database, open_database, redact_url
from core.users import UserDirectory

pytest_plugins = ["tests.media_factory"]

# Tests never read a developer's .env or real tokens from the environment.
for _name in list(os.environ):
    if _name.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_", "S3_")) or _name in (
        "DATABASE_URL", "GENERATOR", "ADMIN_IDS", "PUBLIC_URL", "MEDIA_DIR", "MEDIA_URL",
        "MEDIA_PUBLIC", "REDIS_URL", "REDIS_KEY_PREFIX",
    ):
        del os.environ[_name]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        database_url=f"sqlite:///{tmp_path / 'lokiz.db'}",
        media_dir=tmp_path / "media",
    )


# The server the throwaway databases are created on (the local one by default).
POSTGRES_SERVER = os.environ.get(
    "LOKIZ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STORES = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_stores: run tests that use `database_url` on SQLite and PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "both_stores"
    ):
        metafunc.parametrize("database_url", STORES, indirect=True)


def _with_database(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a database created for this test session (and dropped after it).

    Skips, saying why, when no server answers; under CI=true that is a failure.
    """
    try:
        admin = psycopg.connect(POSTGRES_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        reason = f"PostgreSQL unreachable at {redact_url(POSTGRES_SERVER)}: {exc}".strip()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI needs the service: start it in .ci/run)")
        pytest.skip(reason)
    name = f"lokiz_test_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_SERVER, name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of its own for one test (SQLite unless parametrised)."""
    store = getattr(request, "param", "sqlite")
    if store == "sqlite":
        yield f"sqlite:///{tmp_path / 'lokiz.db'}"
        return
    base = request.getfixturevalue("postgres_database")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await open_database(database_url)
    yield database
    await database.close()


@pytest.fixture
def ledger(db: Database) -> CreditLedger:
    return CreditLedger(db, UserDirectory(db), starter_credits=0)


# The Redis server the tests use (the local one by default). Each test session keeps its
# keys under `lokiz_test_<random>:` and deletes them afterwards; nothing else is touched.
REDIS_SERVER = os.environ.get("LOKIZ_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_session_prefix() -> Iterator[str]:
    """This session's key prefix on the test Redis (its keys deleted afterwards).

    Skips, saying why, when no server answers; under CI=true that is a failure.
    """
    import redis

    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=5)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis unreachable at {redact_url(REDIS_SERVER)}: {exc}".strip()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI needs the service: start it in .ci/run)")
        pytest.skip(reason)
    prefix = f"lokiz_test_{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
        client.close()


@pytest.fixture
def redis_url(redis_session_prefix: str) -> str:
    """The test Redis's URL; use it with `redis_prefix`, never without a prefix."""
    return REDIS_SERVER


@pytest.fixture
def redis_prefix(redis_session_prefix: str) -> str:
    """A key prefix of this test's own (under the session's, deleted with it)."""
    return f"{redis_session_prefix}{secrets.token_hex(4)}:"
