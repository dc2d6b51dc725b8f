"""The embedded SQLite store (aiosqlite, WAL, foreign keys on).

One connection serves the process: units of work are serialised by an asyncio
lock (so a read sees every write this process made before it) and opened with
BEGIN IMMEDIATE, so other processes wait instead of failing. Read units open a
deferred transaction: in WAL mode they never wait for another process's writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from core.storage.base import ConstraintViolation, Row, migrations
from core.storage.database import Database, UnitOfWork

log = logging.getLogger(__name__)


class _Line:
    """A connection, the lock that gives it to one unit of work at a time, and its cleanups."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()
        self._settling: set[asyncio.Task[None]] = set()

    async def step(self, sql: str) -> None:
        """Run BEGIN/COMMIT/ROLLBACK so a cancelled caller cannot leave the connection mid-way.

        aiosqlite finishes a queued statement in its thread even when the awaiting task is
        cancelled; the lock is then held until the connection is idle again.
        """
        try:
            await self.conn.execute(sql)
        except asyncio.CancelledError:
            task = asyncio.ensure_future(self._settle())
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)
            raise
        except BaseException:
            await self._settle()
            raise
        if not sql.startswith("BEGIN"):
            self.lock.release()

    async def _settle(self) -> None:
        try:
            # Queued behind the interrupted statement: once it answers, that one has run.
            with contextlib.suppress(Exception):
                await self.conn.execute("SELECT 1")
            if self.conn.in_transaction:
                await self.conn.execute("ROLLBACK")
        finally:
            self.lock.release()


class _SqliteUnit(UnitOfWork):
    # Each call is one trip to aiosqlite's thread: trips, not SQL, bound throughput.
    def __init__(self, db: SqliteDatabase, line: _Line, begin: str) -> None:
        super().__init__("sqlite", db.ledger_totals)
        self._line = line
        self._conn = line.conn
        self._begin_sql = begin

    async def _begin(self) -> None:
        await self._line.lock.acquire()
        await self._line.step(self._begin_sql)

    async def _end(self, commit: bool) -> None:
        await self._line.step("COMMIT" if commit else "ROLLBACK")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            found = await self._conn.execute_fetchall(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return [dict(row) for row in found]


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA busy_timeout=30000")
    # Switching a new file to WAL answers "locked" at once, without waiting, while another
    # process opening it at the same moment does the same: try again briefly.
    for attempt in range(100):
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if attempt == 99:
                await conn.close()
                raise
            await asyncio.sleep(0.05)
    # NORMAL in WAL mode: a committed transaction survives a killed process.
    await conn.execute("PRAGMA synchronous=NORMAL")
    await conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _statements(script: str) -> list[str]:
    """Split a migration into statements (a trigger's body keeps its semicolons)."""
    found, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                found.append(current.strip())
            current = ""
    if current.strip() and not current.strip().startswith("--"):
        found.append(current.strip())
    return found


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        super().__init__()
        self._line = _Line(conn)
        self.path = path
        self._inline: sqlite3.Connection | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return cls(await _connect(path), path)

    def transaction(self) -> UnitOfWork:
        return _SqliteUnit(self, self._line, "BEGIN IMMEDIATE")

    def read(self) -> UnitOfWork:
        return _SqliteUnit(self, self._line, "BEGIN")

    async def schema_version(self) -> int:
        async with self.read() as uow:
            return await self._version(uow)

    @staticmethod
    async def _version(uow: UnitOfWork) -> int:
        if await uow.fetchone(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ) is None:
            return 0
        return int(await uow.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    @staticmethod
    async def _applied(uow: UnitOfWork) -> set[int]:
        if await uow.fetchone(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ) is None:
            return set()
        return {int(row["version"]) for row in await uow.fetchall(
            "SELECT version FROM schema_migrations")}

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        for version, name, sql in migrations("sqlite"):
            # One transaction per file, the version read inside it: a second process
            # starting at the same moment waits on the write lock, then skips the file.
            async with self.transaction() as uow:
                # Every file not yet applied, not only those above the newest: work merged
                # from parallel branches may bring a lower number after a higher one.
                if version in await self._applied(uow):
                    continue
                await uow.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at REAL NOT NULL)"
                )
                for statement in _statements(sql):
                    await uow.execute(statement)
                await uow.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
            log.info("database migration applied: %s", name)
            applied.append(version)
        return applied

    async def find_user(self, platform: str, platform_user_id: str) -> Row | None:
        # Inline on a second connection: an indexed lookup takes microseconds, while a hop to
        # aiosqlite's thread (and back through the GIL) was most of the cost of a chat update.
        if self.path == ":memory:":
            return await super().find_user(platform, platform_user_id)
        if self._inline is None:
            self._inline = sqlite3.connect(self.path, isolation_level=None, timeout=1.0)
            self._inline.row_factory = sqlite3.Row
            self._inline.execute("PRAGMA query_only=ON")
        # fetchall ends the statement, and with it the read transaction (no stale snapshot,
        # no checkpoint held back).
        found = self._inline.execute(
            "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        ).fetchall()
        return dict(found[0]) if found else None

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
        await self._line.conn.close()
