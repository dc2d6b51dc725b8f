"""The embedded SQLite store (WAL, foreign keys on).

Units of work are serialised by an asyncio lock (so a read sees every write this
process made before it) and opened with BEGIN IMMEDIATE; read units open a
deferred transaction, which in WAL mode never waits for another process's writer.

A unit runs on the event loop's own sqlite3 connection: its statements take
microseconds, while a hop to aiosqlite's thread and back cost more than the SQL
(most of a charge). That connection never waits: when another process holds the
write lock, the unit runs on the aiosqlite connection instead, whose thread waits
for it. Migrations always take that path, and so do WAL checkpoints, off the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from core.storage.base import ConstraintViolation, Row, migrations
from core.storage.database import Database, Migrated, UnitOfWork

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


# SQLITE_BUSY and SQLITE_LOCKED (primary codes; extended ones carry them in the low byte).
_BUSY = (5, 6)


class _SqliteUnit(UnitOfWork):
    """One transaction, on the loop's own connection when it can be had without waiting."""

    def __init__(self, db: SqliteDatabase, line: _Line, begin: str, *, inline: bool) -> None:
        super().__init__("sqlite", db.ledger_totals)
        self._db = db
        self._line = line
        self._conn = line.conn
        self._begin_sql = begin
        self._inline: sqlite3.Connection | None = db.loop_connection() if inline else None

    async def _begin(self) -> None:
        await self._line.lock.acquire()
        if self._inline is not None:
            try:
                self._inline.execute(self._begin_sql)
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode & 0xFF not in _BUSY:
                    self._line.lock.release()
                    raise
                # Another process holds the write lock: wait for it on the thread instead.
                self._inline = None
            except BaseException:
                self._line.lock.release()
                raise
        await self._line.step(self._begin_sql)

    async def _end(self, commit: bool) -> None:
        inline = self._inline
        if inline is None:
            await self._line.step("COMMIT" if commit else "ROLLBACK")
            return
        try:
            inline.execute("COMMIT" if commit else "ROLLBACK")
        except BaseException:
            if inline.in_transaction:
                inline.execute("ROLLBACK")
            raise
        finally:
            self._line.lock.release()
        if commit:
            self._db.committed_inline()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            if self._inline is not None:
                return self._inline.execute(sql, params).rowcount
            cursor = await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return cursor.rowcount

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            if self._inline is not None:
                found: Iterable[sqlite3.Row] = self._inline.execute(sql, params).fetchall()
            else:
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

    # Inline commits between two WAL checkpoints (SQLite's own would run inside a commit,
    # on the loop, once the log reaches 1,000 pages).
    CHECKPOINT_EVERY = 500

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        super().__init__()
        self._line = _Line(conn)
        self.path = path
        self._inline: sqlite3.Connection | None = None
        self._loop_conn: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return cls(await _connect(path), path)

    def transaction(self) -> UnitOfWork:
        return _SqliteUnit(self, self._line, "BEGIN IMMEDIATE", inline=True)

    def read(self) -> UnitOfWork:
        return _SqliteUnit(self, self._line, "BEGIN", inline=True)

    def loop_connection(self) -> sqlite3.Connection | None:
        """The connection units use on the event loop (none for an in-memory database)."""
        if self._loop_conn is None and self.path != ":memory:":
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            # Never wait on the loop: a busy database sends the unit to the thread instead.
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._loop_conn = conn
        return self._loop_conn

    def committed_inline(self) -> None:
        """Count a commit on the loop's connection; checkpoint the log on the thread now and then."""
        self._commits += 1
        if self._commits >= self.CHECKPOINT_EVERY and (
            self._checkpoint is None or self._checkpoint.done()
        ):
            self._commits = 0
            self._checkpoint = asyncio.ensure_future(self._checkpoint_wal())

    async def _checkpoint_wal(self) -> None:
        # First PASSIVE on a connection of its own, in a thread: it copies the log into the
        # database while writers go on. It never catches up with a steady stream of commits
        # (the log is only rewound once all of it is copied), so a second PASSIVE copies the
        # remainder between this process's units, holding their lock: the units wait on the
        # asyncio lock for that short copy (never on the loop, never in SQLite's busy-wait
        # sleeps), and the next writer starts the log from the beginning.
        def bulk() -> None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.debug("WAL checkpoint skipped: %s", exc)
            finally:
                conn.close()

        await asyncio.to_thread(bulk)
        async with self._line.lock:
            try:
                await self._line.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                log.debug("WAL checkpoint skipped: %s", exc)

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

    async def migrate(self) -> Migrated:
        applied = Migrated()
        for version, name, sql in migrations("sqlite"):
            # One transaction per file, the version read inside it: a second process
            # starting at the same moment waits on the write lock, then skips the file.
            async with _SqliteUnit(self, self._line, "BEGIN IMMEDIATE", inline=False) as uow:
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
            applied.versions.append(version)
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
        if self._checkpoint is not None and not self._checkpoint.done():
            await self._checkpoint
        if self._inline is not None:
            self._inline.close()
        if self._loop_conn is not None:
            self._loop_conn.close()
        await self._line.conn.close()
