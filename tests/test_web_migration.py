"""Migration 009 rebuilds the users table so browsers can be users: nothing already there moves."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from core.storage import open_database
from core.storage.base import migrations


def test_upgrading_keeps_every_user_balance_and_reference_and_admits_web_users(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                 " applied_at REAL NOT NULL)")
    for version, name, sql in migrations("sqlite"):
        if version < 9:
            conn.executescript(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    conn.execute("INSERT INTO users (platform, platform_user_id, created_at, seen_at)"
                 " VALUES ('telegram', '42', 0, 0)")
    conn.execute("INSERT INTO ledger (user_id, delta, kind, actor, idempotency_key, balance_after,"
                 " created_at) VALUES (1, 50, 'starter', 'system', 'starter:1', 50, 0)")
    conn.execute("INSERT INTO sessions (id, user_id, platform, chat_id, step, data, created_at,"
                 " updated_at, expires_at) VALUES ('s1', 1, 'telegram', '42', 'frame', '{}', 0, 0, 0)")
    conn.close()

    async def upgrade() -> None:
        db = await open_database(f"sqlite:///{path}")
        await db.close()

    asyncio.run(upgrade())

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    assert conn.execute("SELECT id, platform, balance FROM users").fetchall() == [(1, "telegram", 50)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.execute("INSERT INTO ledger (user_id, delta, kind, actor, idempotency_key, balance_after,"
                 " created_at) VALUES (1, 5, 'grant', 'cli', 'g1', 55, 0)")
    assert conn.execute("SELECT balance FROM users WHERE id = 1").fetchone() == (55,)  # trigger bound
    conn.execute("INSERT INTO users (platform, platform_user_id, created_at, seen_at)"
                 " VALUES ('web', '1234567890123456', 0, 0)")
    with pytest.raises(sqlite3.IntegrityError):  # references still checked, against the new table
        conn.execute("INSERT INTO sessions (id, user_id, platform, chat_id, step, data, created_at,"
                     " updated_at, expires_at) VALUES ('s2', 99, 'web', '1', 'frame', '{}', 0, 0, 0)")
    conn.close()


@pytest.mark.both_stores
async def test_a_migration_merged_under_a_lower_number_still_runs(database_url):
    db = await open_database(database_url)
    try:
        async with db.transaction() as uow:  # as if 009 had come after 010 was applied
            await uow.execute("DELETE FROM schema_migrations WHERE version = 9")
            await uow.execute("DROP TABLE web_media")
            await uow.execute("DROP TABLE web_messages")
        assert (await db.migrate()).versions == [9] and not await db.migrate()
    finally:
        await db.close()
