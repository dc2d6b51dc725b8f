"""Storage: the port (`Database`, `UnitOfWork` and its stores) and the factory.

`open_database(url)` picks the store named by `DATABASE_URL`:
`sqlite:///path` (embedded) or `postgresql://user@host/db`. Every SQL statement
of the product lives in this package.
"""

from __future__ import annotations

from core.storage.base import ConstraintViolation, Executor, Overdraft, Row
from core.storage.database import Database, Migrated, Transaction, UnitOfWork
from core.storage.url import redact_url, url_password

__all__ = [
    "ConstraintViolation", "Database", "Executor", "Migrated", "Overdraft", "Row", "Transaction",
    "UnitOfWork", "open_database", "redact_url",
]


async def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open the store named by `DATABASE_URL` and bring its schema up to date."""
    from core.errors import ConfigError

    shown = redact_url(url)
    db: Database
    if url.startswith("sqlite:///") or url == "sqlite://:memory:":
        from core.storage.sqlite import SqliteDatabase

        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ":memory:"
        db = await SqliteDatabase.open(path)
    elif url.startswith(("postgresql://", "postgres://")):
        import psycopg

        from core.storage.postgres import PostgresDatabase

        try:
            db = await PostgresDatabase.open(url)
        except (psycopg.Error, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            secret = url_password(url)
            if secret:
                reason = reason.replace(secret, "***")
            raise ConfigError(f"DATABASE_URL {shown}: cannot connect: {reason}") from None
    else:
        raise ConfigError(f"DATABASE_URL {shown}: must start with sqlite:/// or postgresql://")
    if migrate:
        await db.migrate()
    return db
