"""The PostgreSQL store (psycopg 3, async, with a connection pool).

PostgreSQL runs READ COMMITTED and does not serialise writers, so the stores
lock the rows they read before writing (see `UserRows.lock`). Migrations run
under an advisory lock, so instances starting together apply them once.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from core.storage import job_queue_schema
from core.storage.base import ConstraintViolation, Row, migrations
from core.storage.database import Database, Migrated, UnitOfWork

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key for migrations ("LOKIZ" in ASCII).
MIGRATION_LOCK = 0x4C4F4B495A


@functools.lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """`?` placeholders → `%s` (a literal `%` doubled). No statement of ours has `?` in a string."""
    return sql.replace("%", "%%").replace("?", "%s")


class _PgUnit(UnitOfWork):
    def __init__(self, db: PostgresDatabase, *, read_only: bool = False) -> None:
        super().__init__("postgresql", db.ledger_totals)
        self._pool = db.pool
        # READ COMMITTED gives each statement its own snapshot even inside a transaction,
        # so a read unit runs its statements in autocommit: no BEGIN/COMMIT round trips.
        self._read_only = read_only
        self._stack = AsyncExitStack()
        self._conn: psycopg.AsyncConnection[Row] | None = None

    async def _begin(self) -> None:
        async with AsyncExitStack() as stack:
            conn = await stack.enter_async_context(self._pool.connection())
            if not self._read_only:
                await stack.enter_async_context(conn.transaction())
            self._conn = conn
            self._stack = stack.pop_all()

    async def _end(self, commit: bool) -> None:
        stack, self._conn = self._stack, None
        if commit:
            await stack.aclose()
        else:
            # Roll back: the transaction block sees an exception leave it.
            await stack.__aexit__(_Rollback, _Rollback(), None)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        assert self._conn is not None, "use the unit of work inside `async with`"
        try:
            cursor = await self._conn.execute(to_psycopg(sql), tuple(params))
        except psycopg.errors.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return cursor.rowcount

    @property
    def connection(self) -> psycopg.AsyncConnection[Row]:
        """The psycopg connection this unit's transaction runs on, for a library that joins
        the transaction (procrastinate's `defer_async` with `connection=`)."""
        assert self._conn is not None, "use the unit of work inside `async with`"
        return self._conn

    async def script(self, sql: str) -> None:
        """Run a migration file as it is (several statements, no parameters)."""
        assert self._conn is not None
        await self._conn.execute(sql.encode())

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        assert self._conn is not None, "use the unit of work inside `async with`"
        try:
            cursor = await self._conn.execute(to_psycopg(sql), tuple(params))
        except psycopg.errors.IntegrityError as exc:
            raise ConstraintViolation(str(exc)) from exc
        return await cursor.fetchall() if cursor.description else []


class _Rollback(Exception):
    """Raised into the transaction block to make psycopg roll back."""


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]]) -> None:
        super().__init__()
        self.pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = 10) -> PostgresDatabase:
        """Connect once (so a bad URL fails here, clearly), then open the pool."""
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        await probe.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
        )
        await pool.open(wait=True, timeout=30)
        return cls(pool)

    def transaction(self) -> UnitOfWork:
        return _PgUnit(self)

    def read(self) -> UnitOfWork:
        return _PgUnit(self, read_only=True)

    async def schema_version(self) -> int:
        async with self.read() as uow:
            return await self._version(uow)

    @staticmethod
    async def _version(uow: UnitOfWork) -> int:
        if not await uow.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
            return 0
        return int(await uow.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    async def migrate(self) -> Migrated:
        applied = Migrated()
        async with _PgUnit(self) as uow:
            # Instances that start together queue here; each reads the version after the lock.
            await uow.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            done: set[int] = set()
            if await uow.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
                done = {int(row["version"]) for row in await uow.fetchall(
                    "SELECT version FROM schema_migrations")}
            # Every file not yet applied (a lower number may be merged after a higher one).
            pending = [m for m in migrations("postgresql") if m[0] not in done]
            if pending:
                await uow.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
            for version, name, sql in pending:
                await uow.script(sql)
                await uow.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (version, name, time.time())
                )
                log.info("database migration applied: %s", name)
                applied.versions.append(version)
            # The job queue's own tables (procrastinate): installed, or upgraded by the
            # migrations a newer procrastinate ships, under the same lock and transaction.
            applied.job_queue = await job_queue_schema.bring_up_to_date(uow, uow.script)
        return applied

    @property
    def url(self) -> str:
        """The connection string (for the job queue's own pool and LISTEN connections)."""
        return str(self.pool.conninfo)

    async def listen(self, *channels: str) -> AsyncIterator[tuple[str, str]]:
        """(channel, payload) of each NOTIFY on `channels`, on a connection of its own,
        until cancelled."""
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        try:
            for channel in channels:
                if not re.fullmatch(r"[a-z_][a-z0-9_]*", channel):
                    raise ValueError(f"bad channel name {channel!r}")
                await conn.execute(f"LISTEN {channel}".encode())
            async for notice in conn.notifies():
                yield notice.channel, notice.payload
        finally:
            await conn.close()

    async def close(self) -> None:
        await self.pool.close()
