"""`python -m bot migrate`: apply database migrations.

`python -m bot migrate --copy-from sqlite:///data/lokiz.db` also moves an embedded
database into the PostgreSQL `DATABASE_URL` (core/storage/copy.py): an empty target
only, every table in one transaction, row counts and balances checked before commit.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.settings import Settings
from core.storage import Migrated, open_database, redact_url
from core.storage.base import Dialect, migrations
from core.storage.copy import CopyRefused, copy_database
from core.storage.job_queue_schema import installed_version


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="apply database migrations")
    parser.add_argument(
        "--copy-from", metavar="sqlite:///PATH",
        help="then copy this SQLite database into DATABASE_URL (PostgreSQL, empty); stop the"
             " bot first")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_database(settings.database_url, migrate=False)
    try:
        applied = await db.migrate()
        report(applied, await db.schema_version(), db.dialect)
        if args.copy_from:
            return await copy_from(args.copy_from, db, settings)
    finally:
        await db.close()
    return 0


def report(applied: Migrated, version: int, dialect: Dialect) -> None:
    """Say what `migrate` applied, each file by name; "up to date" only when nothing was."""
    if not applied:
        print(f"database is up to date (schema version {version})")
        return
    if applied.versions:
        print(f"applied migrations {', '.join(map(str, applied.versions))};"
              f" schema version {version}")
        names = {number: name for number, name, _ in migrations(dialect)}
        for number in applied.versions:
            print(f"  {names[number]}")
    else:
        print(f"LOKIZ migrations are up to date (schema version {version})")
    if applied.job_queue:
        print(f"applied job queue files (procrastinate {installed_version()}):")
        for name in applied.job_queue:
            print(f"  {name}")


async def copy_from(url: str, target: Any, settings: Settings) -> int:
    where = redact_url(settings.database_url)
    if not url.startswith("sqlite:///"):
        print("error: --copy-from takes a SQLite database: sqlite:///PATH", file=sys.stderr)
        return 2
    if target.dialect != "postgresql":
        print(f"error: DATABASE_URL ({where}) must be PostgreSQL to copy into", file=sys.stderr)
        return 2
    from pathlib import Path

    if not Path(url.removeprefix("sqlite:///")).is_file():
        print(f"error: --copy-from: no SQLite database at {url}", file=sys.stderr)
        return 2
    # The source is brought to the current schema first, as `run` would do.
    source = await open_database(url)
    try:
        report = await copy_database(source, target)
    except CopyRefused as exc:
        print(f"error: copy refused: {exc}", file=sys.stderr)
        return 1
    finally:
        await source.close()
    print(f"copied {url} into {where}")
    width = max(len(table) for table in report.rows)
    for table, rows in report.rows.items():
        print(f"  {table:<{width}}  {rows:>9} rows")
    print(f"checked: the same row count in {len(report.rows)} tables; {report.balances} balances"
          f" equal ({report.credits} credits in all)")
    if report.left_out:
        print(f"not copied (unknown to this version): {', '.join(report.left_out)}")
    return 0
