"""What every store's connection offers: raw statements in one transaction, and the errors.

Only code inside `core.storage` writes SQL. Statements use `?` placeholders; the
PostgreSQL store turns them into psycopg's `%s`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any, Literal

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgresql"]


class ConstraintViolation(Exception):
    """A statement broke a CHECK, UNIQUE or foreign-key rule of the schema."""


class Overdraft(Exception):
    """A ledger entry would take a balance below zero; nothing was written."""

    def __init__(self, balance: int) -> None:
        super().__init__(f"balance is {balance}")
        self.balance = balance


class Executor(abc.ABC):
    """Raw statements inside one open transaction (used by the stores, tests and benches)."""

    dialect: Dialect

    @abc.abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; return the number of rows it changed."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run a query (or a statement with RETURNING); return every row."""

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        for row in await self.fetchall(sql, params):
            return row
        return None

    async def fetchval(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchone(sql, params)
        return None if row is None else next(iter(row.values()))


_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations(dialect: Dialect) -> list[tuple[int, str, str]]:
    """(version, name, sql) of a dialect's migrations, in order.

    SQLite's are in core/storage/migrations, PostgreSQL's (same numbers) in its
    `postgresql` folder.
    """
    folder = resources.files("core.storage").joinpath("migrations")
    if dialect == "postgresql":
        folder = folder.joinpath("postgresql")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
