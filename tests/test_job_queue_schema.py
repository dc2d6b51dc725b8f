"""The job queue's schema (procrastinate) follows the installed package: a new database gets it
whole, an older one gets each migration the package ships once, and both end up the same."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from procrastinate.schema import SchemaManager

from core.storage import job_queue_schema
from core.storage.base import migrations
from core.storage.job_queue_schema import UnknownJobQueueSchema, shipped_migrations
from core.storage.postgres import PostgresDatabase

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = shipped_migrations()
NEWEST = MIGRATIONS[-1][0]
APPLIED = "job queue migration applied: "

# What makes two schemas the same, each row with the schema's own name taken out.
CATALOG = {
    "relations": "SELECT relname, relkind FROM pg_class"
                 " WHERE relnamespace = %(ns)s::regnamespace AND relkind <> 'i'",
    "columns": "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
               " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
               " JOIN pg_class c ON c.oid = a.attrelid"
               " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
               " WHERE c.relnamespace = %(ns)s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'c')"
               " AND a.attnum > 0 AND NOT a.attisdropped",
    "constraints": "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
                   " JOIN pg_class c ON c.oid = k.conrelid"
                   " WHERE k.connamespace = %(ns)s::regnamespace",
    "indexes": "SELECT relname, pg_get_indexdef(oid) FROM pg_class"
               " WHERE relnamespace = %(ns)s::regnamespace AND relkind = 'i'",
    "functions": "SELECT proname, prokind, pg_get_function_identity_arguments(oid),"
                 " pg_get_function_result(oid) FROM pg_proc WHERE pronamespace = %(ns)s::regnamespace",
    "function bodies": "SELECT proname, pg_get_function_identity_arguments(oid),"
                       " btrim(regexp_replace(regexp_replace(prosrc, '--[^\\n]*', '', 'g'),"
                       " '\\s+', ' ', 'g')) FROM pg_proc WHERE pronamespace = %(ns)s::regnamespace",
    "triggers": "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid"
                " WHERE c.relnamespace = %(ns)s::regnamespace AND NOT t.tgisinternal",
    "types": "SELECT t.typname, t.typtype, ARRAY(SELECT e.enumlabel::text FROM pg_enum e"
             " WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) FROM pg_type t"
             " WHERE t.typnamespace = %(ns)s::regnamespace AND t.typtype IN ('c', 'd', 'e')",
}


class Schema:
    def __init__(self, base: str) -> None:
        self.name = f"q_{secrets.token_hex(6)}"
        self.url = f"{base}?options={quote(f'-csearch_path={self.name}')}"

    def apply(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.encode())

    def build_queue_through(self, last: str) -> None:
        """procrastinate's tables as its migrations up to `last` (inclusive) left them."""
        for name, sql in MIGRATIONS:
            if name <= last:
                self.apply(sql)

    def catalog(self) -> dict[str, list[tuple[object, ...]]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return {
                what: sorted(
                    tuple(str(v).replace(f"{self.name}.", "") for v in row)
                    for row in conn.execute(sql.encode(), {"ns": self.name}).fetchall()
                )
                for what, sql in CATALOG.items()
            }


@pytest.fixture
def schemas(postgres_database: str) -> Iterator[Callable[[], Schema]]:
    made: list[Schema] = []

    def make() -> Schema:
        schema = Schema(postgres_database)
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema.name}"'.encode())
        made.append(schema)
        return schema

    yield make
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        for schema in made:
            conn.execute(f'DROP SCHEMA "{schema.name}" CASCADE'.encode())


async def migrate(schema: Schema) -> None:
    db = await PostgresDatabase.open(schema.url)
    try:
        await db.migrate()
    finally:
        await db.close()


async def record(schema: Schema, migration: str) -> None:
    db = await PostgresDatabase.open(schema.url)
    try:
        async with db.transaction() as uow:
            await job_queue_schema.record(uow, migration)
    finally:
        await db.close()


async def recorded(schema: Schema) -> str | None:
    db = await PostgresDatabase.open(schema.url)
    try:
        async with db.read() as uow:
            return await job_queue_schema.recorded(uow)
    finally:
        await db.close()


async def fresh_catalog(schemas: Callable[[], Schema]) -> dict[str, list[tuple[object, ...]]]:
    fresh = schemas()
    await migrate(fresh)
    return fresh.catalog()


def applied(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().removeprefix(APPLIED) for r in caplog.records
            if r.getMessage().startswith(APPLIED)]


def files_after(last: str) -> list[str]:
    return [name for name, _ in MIGRATIONS if name > last]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=job_queue_schema.__name__)


def test_procrastinates_migrations_build_the_schema_it_installs(schemas):
    # The premise of upgrading by its files: all of them make what schema.sql makes.
    whole, stepwise = schemas(), schemas()
    whole.apply(SchemaManager.get_schema())
    stepwise.build_queue_through(NEWEST)
    assert stepwise.catalog() == whole.catalog()


async def test_migrate_upgrades_an_older_job_queue_schema_to_the_installed_one(schemas, caplog):
    old = schemas()
    old.build_queue_through("03.02.00_50_post_batch_defer_jobs.sql")
    await record(old, "03.02.00_50_post_batch_defer_jobs.sql")

    await migrate(old)

    assert applied(caplog) == files_after("03.02.00_50_post_batch_defer_jobs.sql")
    assert "03.03.00_01_pre_priority_lock_fetch_job.sql" in applied(caplog)
    assert await recorded(old) == NEWEST
    assert old.catalog() == await fresh_catalog(schemas)


async def test_a_second_migrate_applies_no_job_queue_migration(schemas, caplog):
    old = schemas()
    old.build_queue_through("03.02.00_50_post_batch_defer_jobs.sql")
    await record(old, "03.02.00_50_post_batch_defer_jobs.sql")
    await migrate(old)
    assert applied(caplog)
    upgraded = old.catalog()
    caplog.clear()

    await migrate(old)

    assert applied(caplog) == []
    assert old.catalog() == upgraded


async def test_instances_migrating_together_apply_each_job_queue_migration_once(schemas, caplog):
    old = schemas()
    old.build_queue_through("03.01.00_50_post_add_heartbeat.sql")
    await record(old, "03.01.00_50_post_add_heartbeat.sql")
    first, second = (await PostgresDatabase.open(old.url), await PostgresDatabase.open(old.url))
    try:
        await asyncio.gather(first.migrate(), second.migrate())
    finally:
        await first.close()
        await second.close()

    assert applied(caplog) == files_after("03.01.00_50_post_add_heartbeat.sql")
    assert old.catalog() == await fresh_catalog(schemas)


async def test_a_new_database_records_the_installed_job_queue_schema(schemas, caplog):
    new = schemas()
    await migrate(new)
    assert await recorded(new) == NEWEST
    assert applied(caplog) == []


async def test_an_unrecorded_job_queue_schema_is_read_from_its_objects(schemas):
    old = schemas()
    old.build_queue_through("02.14.01_01_add_indexes_for_fetch_job.sql")
    db = await PostgresDatabase.open(old.url)
    try:
        async with db.read() as uow:
            with pytest.raises(UnknownJobQueueSchema):
                await job_queue_schema.detect(uow)
        for name, sql in MIGRATIONS:
            if name.startswith("03."):
                old.apply(sql)
                async with db.read() as uow:
                    assert await job_queue_schema.detect(uow) == name
    finally:
        await db.close()


async def test_migrate_upgrades_a_job_queue_schema_an_earlier_lokiz_left_unrecorded(
        schemas, caplog):
    old = schemas()
    old.build_queue_through("03.01.00_50_post_add_heartbeat.sql")

    await migrate(old)

    assert applied(caplog) == files_after("03.01.00_50_post_add_heartbeat.sql")
    assert "objects show migrations up to 03.01.00_50_post_add_heartbeat.sql" in caplog.text
    assert await recorded(old) == NEWEST
    assert old.catalog() == await fresh_catalog(schemas)


def run_migrate(url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate"], capture_output=True, text=True, cwd=cwd,
        timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url},
    )


async def test_migrate_command_names_the_job_queue_files_it_applied(schemas, tmp_path):
    old = schemas()
    old.build_queue_through("03.02.00_50_post_batch_defer_jobs.sql")
    await record(old, "03.02.00_50_post_batch_defer_jobs.sql")
    # LOKIZ's own tables already current: only the job queue is behind.
    old.apply("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
              " applied_at DOUBLE PRECISION NOT NULL)")
    for version, name, sql in migrations("postgresql"):
        old.apply(sql)
        old.apply(f"INSERT INTO schema_migrations VALUES ({version}, '{name}', 0)")

    first, second = run_migrate(old.url, tmp_path), run_migrate(old.url, tmp_path)

    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "database is up to date" not in first.stdout
    assert "LOKIZ migrations are up to date" in first.stdout
    for name in files_after("03.02.00_50_post_batch_defer_jobs.sql"):
        assert f"  {name}\n" in first.stdout
    assert "03.02.00_50_post_batch_defer_jobs.sql" not in first.stdout
    assert "database is up to date" in second.stdout and ".sql" not in second.stdout


async def test_migrate_command_on_a_new_database_names_everything_it_applied(schemas, tmp_path):
    result = run_migrate(schemas().url, tmp_path)
    assert result.returncode == 0, result.stderr
    for _, name, _ in migrations("postgresql"):
        assert f"  {name}\n" in result.stdout
    assert "applied job queue files" in result.stdout and "  schema.sql\n" in result.stdout
    assert "up to date" not in result.stdout
