"""Shared fixtures: a fresh SQLite file per test, settings without any .env."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.credits import CreditLedger
from core.settings import Settings, load_settings
from core.storage import Database, open_database
from core.users import UserDirectory

pytest_plugins = ["tests.media_factory"]

# Tests never read a developer's .env or real tokens from the environment.
for _name in list(os.environ):
    if _name.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_")) or _name in (
        "DATABASE_URL", "GENERATOR", "ADMIN_IDS", "PUBLIC_URL", "MEDIA_DIR",
    ):
        del os.environ[_name]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        None,
        database_url=f"sqlite:///{tmp_path / 'lokiz.db'}",
        media_dir=tmp_path / "media",
    )


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_database(f"sqlite:///{tmp_path / 'lokiz.db'}")
    yield database
    await database.close()


@pytest.fixture
def ledger(db: Database) -> CreditLedger:
    return CreditLedger(db, UserDirectory(db), starter_credits=0)
