"""The job queue's tables (procrastinate) in our PostgreSQL database: installed whole once,
then upgraded by the migration files procrastinate ships.

procrastinate names its files `xx.yy.zz_NN_{pre|post}_what.sql`, where `xx.yy.zz` is the
release the file *applies to* (it ships in a later one) and `NN` below 50 is a "pre"
migration, 50 and above a "post" one; the names sort in the order they are applied. So the
database records the name of the last file its schema includes, not a package version (a
database made by procrastinate 3.2.0 still needs the `03.02.00_*` files), and `migrate`
applies every shipped file that sorts after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from importlib import metadata, resources

from core.errors import ConfigError
from core.storage.base import Executor

log = logging.getLogger(__name__)

Script = Callable[[str], Awaitable[None]]

# procrastinate's whole schema, the file `SchemaManager.get_schema()` reads.
SCHEMA_FILE = "schema.sql"

# What an earlier LOKIZ left: it installed procrastinate's schema.sql and recorded nothing.
# Each shipped 3.x file (LOKIZ never ran an older procrastinate), newest first, with a test
# that holds once the database's schema includes that file. The newest that holds is where
# the schema stands, so an unrecorded database is upgraded from where it really is, not from
# a guess. This list is history: files after 03.04.00 are never needed here, because a
# database without a record was made before LOKIZ recorded, with procrastinate 3.10.0.
_FINGERPRINTS: tuple[tuple[str, str], ...] = (
    ("03.04.00_50_post_add_retry_failed_job_procedure.sql",
     "(SELECT prosrc LIKE '%retried%' FROM pg_proc WHERE oid ="
     " to_regproc('procrastinate_trigger_function_status_events_update_v1'))"),
    ("03.04.00_01_pre_add_retry_failed_job_procedure.sql",
     "EXISTS (SELECT FROM pg_enum WHERE enumlabel = 'retried'"
     " AND enumtypid = to_regtype('procrastinate_job_event_type'))"),
    ("03.03.00_01_pre_priority_lock_fetch_job.sql",
     "(SELECT prosrc LIKE '%other_jobs.priority%' FROM pg_proc WHERE oid ="
     " to_regproc('procrastinate_fetch_job_v2'))"),
    ("03.02.00_50_post_batch_defer_jobs.sql",
     "to_regproc('procrastinate_defer_jobs_v1') IS NOT NULL"
     " AND to_regproc('procrastinate_defer_job_v1') IS NULL"),
    ("03.02.00_01_pre_batch_defer_jobs.sql",
     "to_regproc('procrastinate_defer_jobs_v1') IS NOT NULL"),
    ("03.01.00_50_post_add_heartbeat.sql",
     "to_regclass('procrastinate_workers') IS NOT NULL"
     " AND to_regproc('procrastinate_fetch_job_v1') IS NULL"),
    ("03.01.00_01_pre_add_heartbeat.sql",
     "to_regclass('procrastinate_workers') IS NOT NULL"),
    ("03.00.00_50_post_cancel_notification.sql",
     "to_regclass('procrastinate_jobs_lock_idx_v1') IS NOT NULL"),
    ("03.00.00_01_pre_cancel_notification.sql",
     "EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('procrastinate_jobs')"
     " AND attname = 'abort_requested' AND NOT attisdropped)"),
)


class UnknownJobQueueSchema(ConfigError):
    """procrastinate's tables are there, unrecorded, and older than any schema LOKIZ made
    (`migrate` says so and stops rather than guess which files to apply)."""


def shipped_migrations() -> list[tuple[str, str]]:
    """(file name, sql) of every migration the installed procrastinate ships, in order."""
    folder = resources.files("procrastinate.sql").joinpath("migrations")
    found = [(entry.name, entry.read_text(encoding="utf-8"))
             for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted(found)


def installed_version() -> str:
    return metadata.version("procrastinate")


async def recorded(uow: Executor) -> str | None:
    """The last procrastinate migration the database's schema includes, if recorded."""
    if not await uow.fetchval("SELECT to_regclass('job_queue_schema') IS NOT NULL"):
        return None
    name = await uow.fetchval("SELECT migration FROM job_queue_schema")
    return None if name is None else str(name)


async def record(uow: Executor, migration: str) -> None:
    """Record that the schema includes `migration` (and every file before it)."""
    await uow.execute(
        "CREATE TABLE IF NOT EXISTS job_queue_schema (migration TEXT NOT NULL,"
        " procrastinate_version TEXT NOT NULL, recorded_at DOUBLE PRECISION NOT NULL)")
    await uow.execute("DELETE FROM job_queue_schema")
    await uow.execute("INSERT INTO job_queue_schema VALUES (?, ?, ?)",
                      (migration, installed_version(), time.time()))


async def detect(uow: Executor) -> str:
    """The last migration an unrecorded schema includes, read from its objects."""
    for name, holds in _FINGERPRINTS:
        if await uow.fetchval(f"SELECT COALESCE(({holds}), false)"):
            return name
    raise UnknownJobQueueSchema(
        "the job queue's tables (procrastinate_jobs, ...) predate procrastinate 3 and carry no"
        " record of their version: apply procrastinate's migrations up to"
        " 03.00.00_50_post_cancel_notification.sql by hand, then migrate again")


async def bring_up_to_date(uow: Executor, script: Script) -> list[str]:
    """Install or upgrade the job queue's schema in `uow`'s transaction (the caller holds
    the migration lock); return the files applied: `schema.sql` when installed whole, else
    the migration files."""
    shipped = shipped_migrations()
    newest = shipped[-1][0]
    if not await uow.fetchval("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"):
        from procrastinate.schema import SchemaManager

        await script(SchemaManager.get_schema())
        await record(uow, newest)
        log.info("job queue schema applied (procrastinate %s, migrations up to %s)",
                 installed_version(), newest)
        return [SCHEMA_FILE]
    at = await recorded(uow)
    if at is None:
        at = await detect(uow)
        log.info("job queue schema found without a record (made by an earlier LOKIZ);"
                 " its objects show migrations up to %s", at)
        await record(uow, at)
    if at > newest:
        log.warning("job queue schema is at %s, newer than procrastinate %s ships (%s):"
                    " left as it is", at, installed_version(), newest)
        return []
    applied = []
    for name, sql in shipped:
        if name > at:
            await script(sql)
            log.info("job queue migration applied: %s", name)
            applied.append(name)
    if applied:
        await record(uow, applied[-1])
    return applied
