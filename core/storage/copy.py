"""Moving to PostgreSQL: copy an embedded SQLite database into an empty PostgreSQL one.

`copy_database(source, target)` copies every table the product keeps (users, the ledger,
jobs, sessions, posts and likes, platform files, the admin log, media usage, the web
studio's pages) in one PostgreSQL transaction, then checks before committing that each
table has as many rows on both sides and that every user's balance is equal. Any
difference rolls the whole copy back: the target is left as it was.

Safe by construction:
- the target must hold no row in any of these tables (there is no override: copy into a
  fresh database, or drop and recreate it);
- balances are not copied but rebuilt: users arrive with 0 and the ledger's own trigger
  adds each entry, in order, so a balance equal on both sides proves the ledger sums to it;
- ids are kept (jobs, posts and sessions refer to them) and the identity sequences are
  moved past them, so new rows never collide;
- the source is read in one read transaction (a consistent snapshot); stop the bot first
  so that nothing written after the snapshot is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from core.storage.base import Executor
from core.storage.database import Database
from core.storage.stores import _insert_many

# Parents before children (foreign keys); each copied in its SQLite rowid order.
TABLES = (
    "users", "ledger", "jobs", "job_likes", "sessions", "platform_files", "admin_log",
    "media_usage", "posts", "post_likes", "creator_likes", "chat_windows", "creator_window",
    "web_messages", "web_media",
)
GENERATED = {("jobs", "seq")}  # PostgreSQL numbers these itself (in the order rows arrive)
IDENTITY = ("users", "ledger", "admin_log", "posts", "web_messages")  # `id` from a sequence
NOT_DATA = {"schema_migrations"}
BATCH = 5000


class CopyRefused(Exception):
    """The copy was refused or failed its checks; nothing was written to the target."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)  # table → rows copied (= on both sides)
    balances: int = 0  # users whose balance was checked equal
    credits: int = 0  # the sum of those balances
    left_out: list[str] = field(default_factory=list)  # source tables this copier does not know


async def _tables(tx: Executor) -> set[str]:
    if tx.dialect == "sqlite":
        rows = await tx.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        rows = await tx.fetchall(
            "SELECT table_name AS name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")
    return {str(row["name"]) for row in rows}


async def _columns(tx: Executor, table: str) -> list[str]:
    if tx.dialect == "sqlite":
        rows = await tx.fetchall(f"SELECT name FROM pragma_table_info('{table}')")
    else:
        rows = await tx.fetchall(
            "SELECT column_name AS name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,))
    return [str(row["name"]) for row in rows]


async def _balances(tx: Executor) -> dict[int, int]:
    rows = await tx.fetchall("SELECT id, balance FROM users")
    return {int(row["id"]): int(row["balance"]) for row in rows}


async def copy_database(
    source: Database, target: Database, *, batch: int = BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy `source` (SQLite) into `target` (PostgreSQL, empty), checked; see the module."""
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise CopyRefused("copies go from a SQLite database into a PostgreSQL one")
    report = CopyReport()
    async with source.read() as src, target.transaction() as dst:
        known = await _tables(src)
        present = await _tables(dst)
        report.left_out = sorted(known - set(TABLES) - NOT_DATA)
        missing = [table for table in TABLES if table in known and table not in present]
        if missing:
            raise CopyRefused(f"the target has no table {', '.join(missing)} (is it migrated?)")
        busy = [table for table in TABLES if table in present
                and await dst.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")]
        if busy:
            raise CopyRefused(
                f"the target database already holds rows ({', '.join(busy)}); copy into an"
                " empty database (nothing was written)")
        for table in TABLES:
            if table not in known:
                continue
            wanted = set(await _columns(dst, table))
            columns = [c for c in await _columns(src, table)
                       if c in wanted and (table, c) not in GENERATED]
            report.rows[table] = await _copy_table(src, dst, table, columns, batch, progress)
        for table in IDENTITY:
            if report.rows.get(table):
                await dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" (SELECT max(id) FROM {table}))")
        await _check(src, dst, report)
    return report


async def _copy_table(
    src: Executor, dst: Executor, table: str, columns: list[str], batch: int,
    progress: Callable[[str, int], None] | None,
) -> int:
    listed = ", ".join(columns)
    copied, last = 0, -(2**63)
    while True:
        rows = await src.fetchall(
            f"SELECT rowid AS copy_rowid_, {listed} FROM {table}"
            f" WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, batch))
        if not rows:
            return copied
        last = rows[-1]["copy_rowid_"]
        values = [
            # A balance is rebuilt by the ledger's trigger, entry by entry.
            [0 if table == "users" and column == "balance" else row[column] for column in columns]
            for row in rows
        ]
        await _insert_many(dst, table, columns, values)
        copied += len(rows)
        if progress is not None:
            progress(table, copied)


async def _check(src: Executor, dst: Executor, report: CopyReport) -> None:
    """Before the commit: the same row counts, and every user's balance equal."""
    for table, copied in report.rows.items():
        counts = [int(await tx.fetchval(f"SELECT count(*) FROM {table}")) for tx in (src, dst)]
        if counts[0] != copied or counts[1] != copied:
            raise CopyRefused(f"{table}: {counts[0]} rows in SQLite but {counts[1]} copied"
                              " (nothing was written)")
    before, after = await _balances(src), await _balances(dst)
    unequal = sorted(user for user in before if before[user] != after.get(user))
    if unequal or set(after) != set(before):
        shown = ", ".join(f"user {u}: {before[u]} → {after.get(u)}" for u in unequal[:5])
        raise CopyRefused(f"balances differ after the copy ({shown}); its ledger does not sum"
                          " to the stored balance (nothing was written)")
    report.balances = len(before)
    report.credits = sum(before.values())
