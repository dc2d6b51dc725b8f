"""The storage port: a `Database` hands out units of work; a unit of work holds the stores.

    async with db.transaction() as uow:     # or: uow = db.transaction(); async with uow:
        await uow.jobs.insert(row)
        await uow.ledger.append(...)         # both commit together, or neither

`db.read()` is the read path: the same stores, for reads only (a store may
answer them without waiting for writers). SQLite (embedded) and PostgreSQL
implement it.
"""

from __future__ import annotations

import abc
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from core.storage.base import Dialect, Executor, Row
from core.storage.stores import (
    AdminLogRows,
    BulkRows,
    JobRows,
    LedgerRows,
    LikeRows,
    MediaUsageRows,
    PlatformFileRows,
    PostRows,
    SessionRows,
    UserRows,
    WebPageRows,
)

log = logging.getLogger(__name__)

# Kinds of ledger entry whose running totals /metrics reports.
COUNTED_KINDS = ("charge", "refund")


@dataclass
class Migrated:
    """What one `migrate` applied: LOKIZ's migrations by version, and the job queue's
    (procrastinate's) SQL files by name, `schema.sql` when it was installed whole."""

    versions: list[int] = field(default_factory=list)
    job_queue: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.versions or self.job_queue)


class UnitOfWork(Executor):
    """One transaction and the stores bound to it. Leaving `async with` commits (or rolls back)."""

    def __init__(self, dialect: Dialect, ledger_totals: dict[str, int]) -> None:
        self.dialect = dialect
        self._on_commit: list[Callable[[], None]] = []
        self._ledger_totals = ledger_totals

    # The stores, made when first used (most units of work touch one or two).
    @functools.cached_property
    def users(self) -> UserRows:
        return UserRows(self, self.after_commit)

    @functools.cached_property
    def ledger(self) -> LedgerRows:
        return LedgerRows(self, self.after_commit, self._ledger_totals)

    @functools.cached_property
    def jobs(self) -> JobRows:
        return JobRows(self, self.after_commit)

    @functools.cached_property
    def sessions(self) -> SessionRows:
        return SessionRows(self, self.after_commit)

    @functools.cached_property
    def platform_files(self) -> PlatformFileRows:
        return PlatformFileRows(self, self.after_commit)

    @functools.cached_property
    def admin_log(self) -> AdminLogRows:
        return AdminLogRows(self, self.after_commit)

    @functools.cached_property
    def media_usage(self) -> MediaUsageRows:
        return MediaUsageRows(self, self.after_commit)

    @functools.cached_property
    def posts(self) -> PostRows:
        return PostRows(self, self.after_commit)

    @functools.cached_property
    def likes(self) -> LikeRows:
        return LikeRows(self, self.after_commit)

    @functools.cached_property
    def bulk(self) -> BulkRows:
        return BulkRows(self, self.after_commit)

    @functools.cached_property
    def web_pages(self) -> WebPageRows:
        return WebPageRows(self, self.after_commit)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed (never if it rolls back)."""
        self._on_commit.append(callback)

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _end(self, commit: bool) -> None:
        """Commit or roll back, and give the connection back."""

    async def __aenter__(self) -> Self:
        await self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._end(commit=exc_type is None)
        if exc_type is None and self._on_commit:
            for callback in self._on_commit:
                callback()


# Type hints elsewhere name the transaction a caller passes along.
Transaction = UnitOfWork


class Database(abc.ABC):
    """A store that hands out units of work and knows its schema version."""

    dialect: Dialect

    def __init__(self) -> None:
        # Running totals of ledger entries written by this process (for /metrics).
        self.ledger_totals: dict[str, int] = dict.fromkeys(COUNTED_KINDS, 0)

    @abc.abstractmethod
    def transaction(self) -> UnitOfWork:
        """A unit of work: `async with db.transaction() as uow:` commits on success."""

    def read(self) -> UnitOfWork:
        """A unit of work for reading only (may be cheaper, and need not wait for writers)."""
        return self.transaction()

    async def find_user(self, platform: str, platform_user_id: str) -> Row | None:
        """A user's row by platform id: the hot lookup of every chat update."""
        async with self.read() as uow:
            return await uow.users.by_platform_id(platform, platform_user_id)

    @abc.abstractmethod
    async def migrate(self) -> Migrated:
        """Apply pending migrations; return what was applied."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def ping(self) -> bool:
        """Whether the store answers a trivial query."""
        async with self.read() as uow:
            return bool(await uow.fetchval("SELECT 1"))


