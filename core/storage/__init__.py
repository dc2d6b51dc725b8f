"""Storage port: a database with named transactions (a unit of work)."""

from core.storage.database import ConstraintViolation, Database, Transaction, open_database

__all__ = ["ConstraintViolation", "Database", "Transaction", "open_database"]
