"""The database seam: `Database.transaction()` is the unit of work.

Callers write plain SQL with `?` placeholders against a `Transaction`; the
SQLite store (aiosqlite, WAL, foreign keys) is the embedded default. Another
store (PostgreSQL) implements the same two classes.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

Row = dict[str, Any]


class ConstraintViolation(Exception):
    """A statement broke a CHECK, UNIQUE or foreign-key rule of the schema."""


class Transaction(abc.ABC):
    """One open transaction. Leaving `Database.transaction()` commits it (or rolls back)."""

    @abc.abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT; return the new row id."""

    @abc.abstractmethod
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))


class Database(abc.ABC):
    """A store that hands out transactions and knows its schema version."""

    @abc.abstractmethod
    def transaction(self) -> Any:
        """`async with db.transaction() as tx:` — commit on success, rollback on error."""

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def lookup(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """One row by an indexed point query. Stores may answer it inline, so keep it cheap."""
        async with self.read() as tx:
            return await tx.fetchone(sql, params)

    async def ping(self) -> bool:
        async with self.transaction() as tx:
            return bool(await tx.fetchval("SELECT 1"))

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Transaction]:
        """A transaction used only for reading (may be cheaper in some stores)."""
        async with self.transaction() as tx:
            yield tx


async def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open the store named by `DATABASE_URL` and bring its schema up to date."""
    from core.errors import ConfigError

    if url.startswith("sqlite:///") or url == "sqlite://:memory:":
        from core.storage.sqlite import SqliteDatabase

        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ":memory:"
        db: Database = await SqliteDatabase.open(path)
    elif url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "DATABASE_URL: the PostgreSQL store is not part of this build yet; "
            "use sqlite:///path/to/lokiz.db"
        )
    else:
        raise ConfigError("DATABASE_URL: must start with sqlite:/// or postgresql://")
    if migrate:
        await db.migrate()
    return db

