"""The embedded SQLite store (aiosqlite, WAL, foreign keys on).

One connection serves the process; transactions are serialized by an asyncio
lock and opened with BEGIN IMMEDIATE so other processes wait instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import aiosqlite

from core.storage.database import ConstraintViolation, Database, Row, Transaction

log = logging.getLogger(__name__)
_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in core/storage/migrations, in order."""
    found = []
    for entry in resources.files("core.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


class _SqliteTransaction(Transaction):
    # Each method is one trip to aiosqlite's thread: trips, not SQL, bound throughput.
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return cursor.rowcount

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return int(cursor.lastrowid or 0)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        for row in await self.fetchall(sql, params):
            return row
        return None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            found = await self._conn.execute_fetchall(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return [dict(row) for row in found]


class SqliteDatabase(Database):
    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path
        self._reader: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed transaction survives a killed process.
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA foreign_keys=ON")
        await conn.execute("PRAGMA busy_timeout=30000")
        return cls(conn, path)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self._conn)
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            else:
                await self._conn.execute("COMMIT")

    async def schema_version(self) -> int:
        async with self._lock:
            async with self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
            ) as cursor:
                if await cursor.fetchone() is None:
                    return 0
            async with self._conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
            ) as cursor:
                row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        current = await self.schema_version()
        for version, name, sql in migrations():
            if version <= current:
                continue
            async with self._lock:
                # executescript commits on its own; wrap the file and its record together.
                try:
                    await self._conn.executescript(
                        "BEGIN IMMEDIATE;\n"
                        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER"
                        " PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);\n"
                        f"{sql}\n"
                        f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {time.time()});\n"
                        "COMMIT;"
                    )
                except sqlite3.Error:
                    if self._conn.in_transaction:
                        await self._conn.execute("ROLLBACK")
                    raise
            log.info("database migration applied: %s", name)
            applied.append(version)
        return applied

    async def lookup(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        # Inline on a second connection: in WAL mode a reader never waits for the writer, and
        # an indexed lookup takes microseconds, while a hop to aiosqlite's thread (and back
        # through the GIL) was most of the cost of answering a chat update.
        if self.path == ":memory:":
            return await super().lookup(sql, params)
        if self._reader is None:
            self._reader = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
            self._reader.row_factory = sqlite3.Row
            self._reader.execute("PRAGMA query_only=ON")
        # fetchall ends the statement, and with it the read transaction (no stale snapshot,
        # no checkpoint held back).
        found = self._reader.execute(sql, params).fetchall()
        return dict(found[0]) if found else None

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self._conn.close()
