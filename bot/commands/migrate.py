"""`python -m bot migrate`: apply database migrations."""

from __future__ import annotations

import argparse
from typing import Any

from core.settings import Settings
from core.storage import open_database


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="apply database migrations")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_database(settings.database_url, migrate=False)
    try:
        applied = await db.migrate()
        version = await db.schema_version()
    finally:
        await db.close()
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema version {version}")
    else:
        print(f"database is up to date (schema version {version})")
    return 0
