"""The storage seam: units of work, both stores, migrations and the connection's health."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.catalogue import JobRequest
from core.credits import CreditLedger
from core.errors import InsufficientCredits
from core.jobs import QUEUED, Job, JobStore
from core.platform_files import PlatformFiles
from core.sessions import SessionData, SessionStore, Step
from core.storage import Database, open_database
from core.storage.base import migrations
from core.users import UserDirectory

pytestmark = pytest.mark.both_stores

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(r"select |insert into|update .* set|delete from", re.IGNORECASE)


def run_bot(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd,
        timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def a_job(user_id: int, job_id: str, created_at: float | None = None) -> Job:
    now = created_at if created_at is not None else time.time()
    return Job(
        id=job_id, user_id=user_id, platform="telegram", chat_id="1", language="en",
        session_id=None, reply_to_message_id=None, status_message_id=None, action="music",
        model="m", backend="local", request=JobRequest("music", prompt="a"),
        prepared_inputs=None, prediction_id=None, price=5, status=QUEUED, error_class=None,
        error_detail=None, output_path=None, delivered_message_id=None, delivered_file_id=None,
        delivery_attempts=0, likes=0, created_at=now, started_at=None, deadline_at=None,
        finished_at=None,
    )


def test_sql_lives_only_in_the_storage_package():
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        if path.is_relative_to(ROOT / "core" / "storage"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SQL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    # Prose that merely mentions a select menu is not SQL.
    offenders = [o for o in offenders if "select menu" not in o]
    assert offenders == []


async def test_a_job_row_and_its_charge_commit_together_or_not_at_all(db: Database):
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    jobs = JobStore(db, ledger)
    user, _ = await ledger.ensure_user("telegram", "1")
    await ledger.grant(user.id, 7, actor="test")
    async with db.transaction() as uow:
        await jobs.insert(uow, a_job(user.id, "ok"))
        await ledger.charge(uow, user.id, 5, job_id="ok")
    with pytest.raises(InsufficientCredits):
        async with db.transaction() as uow:
            await jobs.insert(uow, a_job(user.id, "too-dear"))
            await ledger.charge(uow, user.id, 5, job_id="too-dear")
    assert await jobs.get("ok") is not None
    assert await jobs.get("too-dear") is None
    assert await ledger.balance(user.id) == 2
    assert [e.job_id for e in await ledger.history(user.id) if e.kind == "charge"] == ["ok"]


async def test_after_commit_callbacks_run_only_when_the_unit_commits(db: Database):
    seen: list[str] = []
    uow = db.transaction()
    async with uow:
        uow.after_commit(lambda: seen.append("committed"))
    with pytest.raises(RuntimeError):
        async with db.transaction() as failing:
            failing.after_commit(lambda: seen.append("rolled back"))
            raise RuntimeError("boom")
    assert seen == ["committed"]


async def test_ledger_totals_count_charges_and_refunds_once_committed(db: Database):
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    user, _ = await ledger.ensure_user("telegram", "1")
    await ledger.grant(user.id, 50, actor="test")
    await ledger.charge_now(user.id, 20, job_id="a")
    await ledger.charge_now(user.id, 20, job_id="a")  # a repeat writes nothing
    with pytest.raises(RuntimeError):
        async with db.transaction() as uow:
            await ledger.charge(uow, user.id, 10, job_id="b")
            raise RuntimeError("rolled back")
    await ledger.refund_now("a")
    await ledger.refund_now("a")
    assert db.ledger_totals == {"charge": 20, "refund": 20}


async def test_two_instances_greeting_one_new_user_make_one_user_and_one_starter(database_url):
    first, second = await open_database(database_url), await open_database(database_url)
    try:
        ledgers = [CreditLedger(d, UserDirectory(d), starter_credits=30) for d in (first, second)]
        results = await asyncio.gather(
            *(ledgers[i % 2].ensure_user("telegram", "77", display_name="Ann") for i in range(10))
        )
        assert len({user.id for user, _ in results}) == 1
        assert [greeted for _, greeted in results].count(True) == 1
        user = results[0][0]
        assert await ledgers[0].balance(user.id) == 30
        assert [e.kind for e in await ledgers[0].history(user.id)] == ["starter"]
    finally:
        await first.close()
        await second.close()


async def test_charges_from_two_instances_never_overdraw(database_url):
    first, second = await open_database(database_url), await open_database(database_url)
    try:
        ledgers = [CreditLedger(d, UserDirectory(d), starter_credits=0) for d in (first, second)]
        user, _ = await ledgers[0].ensure_user("telegram", "1")
        await ledgers[0].grant(user.id, 50, actor="test")

        async def charge(i: int) -> bool:
            try:
                await ledgers[i % 2].charge_now(user.id, 1, job_id=f"j{i}")
                return True
            except InsufficientCredits:
                return False

        results = await asyncio.gather(*(charge(i) for i in range(100)))
        assert results.count(True) == 50
        assert await ledgers[0].balance(user.id) == 0 == await ledgers[0].ledger_sum(user.id)
        history = await ledgers[0].history(user.id, limit=100)
        assert sorted(e.balance_after for e in history if e.kind == "charge") == list(range(50))
    finally:
        await first.close()
        await second.close()


async def test_newest_jobs_come_first_even_when_created_in_the_same_instant(db: Database):
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    jobs = JobStore(db, ledger)
    user, _ = await ledger.ensure_user("telegram", "1")
    async with db.transaction() as uow:
        for job_id in ("first", "second", "third"):
            await jobs.insert(uow, a_job(user.id, job_id, created_at=1000.0))
    assert [job.id for job in await jobs.for_user(user.id)] == ["third", "second", "first"]
    assert await jobs.set_running("second", "p-2", deadline_at=2000.0)
    assert (await jobs.by_prediction("p-2")).id == "second"
    assert not await jobs.set_succeeded("first", "/out.mp4")  # not running: no change
    assert await jobs.like("second", user.id) == 1
    assert await jobs.like("second", user.id) == 1
    assert (await jobs.counts_by_status())["running"] == 1


async def test_a_session_is_found_by_a_key_of_its_data(db: Database):
    users = UserDirectory(db)
    ledger = CreditLedger(db, users, starter_credits=0)
    user, _ = await ledger.ensure_user("telegram", "1")
    sessions = SessionStore(db)
    plain = await sessions.create(user_id=user.id, platform="telegram", chat_id="1",
                                  chat_kind="private", step=Step.SHEET, data=SessionData())
    framed = await sessions.create(user_id=user.id, platform="telegram", chat_id="2",
                                   chat_kind="private", step=Step.FRAME,
                                   data=SessionData(frame="/f.jpg"))
    assert (await sessions.latest_with(user.id, "frame")).id == framed.id
    saved = await sessions.save(plain.evolve(step=Step.FRAME, frame="/g.jpg"))
    assert (await sessions.latest_with(user.id, "frame")).id == plain.id
    assert saved.version == 1


async def test_platform_file_ids_are_remembered_and_replaced(db: Database, tmp_path):
    from core.media_store import MediaStore

    files = PlatformFiles(db, MediaStore(tmp_path / "media", 1))
    clip = tmp_path / "clip.bin"
    clip.write_bytes(b"clip")
    assert await files.file_id("telegram", clip) is None
    await files.remember("telegram", clip, "A")
    await files.remember("telegram", clip, "B")
    assert await files.file_id("telegram", clip) == "B"


async def test_migrate_command_applies_each_dialects_migrations_once(database_url, tmp_path):
    env = {"DATABASE_URL": database_url}
    first = run_bot("migrate", env=env, cwd=tmp_path)
    second = run_bot("migrate", env=env, cwd=tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    versions = ", ".join(str(v) for v, _, _ in migrations("sqlite"))
    assert f"applied migrations {versions}" in first.stdout
    assert "up to date" in second.stdout


async def test_instances_starting_together_migrate_once(database_url):
    opened = await asyncio.gather(*(open_database(database_url, migrate=False) for _ in range(8)))
    try:
        applied = await asyncio.gather(*(d.migrate() for d in opened))
        every = [v for v, _, _ in migrations("sqlite")]
        assert sorted(v for done in applied for v in done.versions) == every
        assert {await d.schema_version() for d in opened} == {every[-1]}
    finally:
        for d in opened:
            await d.close()


def test_each_dialect_has_the_same_migrations():
    from core.storage.base import migrations

    assert [v for v, _, _ in migrations("sqlite")] == [v for v, _, _ in migrations("postgresql")]


@pytest.mark.parametrize(
    "url",
    ["mysql://bob:hunter2secret@db.example/lokiz",
     "postgresql://bob:hunter2secret@127.0.0.1:1/lokiz"],
)
def test_a_bad_database_url_is_shown_with_its_password_hidden(url, tmp_path):
    result = run_bot("migrate", env={"DATABASE_URL": url}, cwd=tmp_path)
    assert result.returncode != 0
    assert "hunter2secret" not in result.stderr + result.stdout
    assert "bob:***@" in result.stderr


async def test_cancelled_waiters_for_the_write_lock_leave_the_connection_usable(tmp_path):
    path = tmp_path / "lock.db"
    db = await open_database(f"sqlite:///{path}")
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    user, _ = await ledger.ensure_user("telegram", "1")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        waiting = [asyncio.create_task(ledger.grant(user.id, 1, actor="t")) for _ in range(3)]
        await asyncio.sleep(0.3)  # the first waits inside BEGIN IMMEDIATE, the others queue
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        other.execute("COMMIT")
        await ledger.grant(user.id, 5, actor="t")
        assert await ledger.balance(user.id) == 5
    finally:
        other.close()
        await db.close()


async def test_a_writer_in_another_process_makes_units_wait_off_the_event_loop(tmp_path):
    # Units run on the loop's own connection, which never waits: while another process
    # holds the write lock, a unit must wait on the thread, and the loop keep serving.
    path = tmp_path / "busy.db"
    db = await open_database(f"sqlite:///{path}")
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    user, _ = await ledger.ensure_user("telegram", "1")
    other = sqlite3.connect(path, isolation_level=None)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE users SET display_name = 'other' WHERE id = ?", (user.id,))
        grant = asyncio.create_task(ledger.grant(user.id, 3, actor="t"))
        await asyncio.sleep(0.3)
        assert not grant.done()
        assert ticks >= 5, "the loop stood still while the unit waited for the lock"
        other.execute("COMMIT")
        await grant
        assert await ledger.balance(user.id) == 3
        assert (await UserDirectory(db).get(user.id)).display_name == "other"
    finally:
        beat.cancel()
        other.close()
        await db.close()


async def test_the_write_ahead_log_is_checkpointed_while_units_commit_on_the_loop(tmp_path):
    path = tmp_path / "wal.db"
    db = await open_database(f"sqlite:///{path}")
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=0)
    user, _ = await ledger.ensure_user("telegram", "1")
    commits = 6 * db.CHECKPOINT_EVERY  # type: ignore[attr-defined]
    for _ in range(commits):
        await ledger.grant(user.id, 1, actor="t")
        await asyncio.sleep(0)  # a serving loop: other work runs between units
    running = db._checkpoint  # type: ignore[attr-defined]
    if running is not None:
        await running
    # Each grant appends about six pages (entry, balance, their indexes): unchecked, the
    # log would hold all of them; rewound every CHECKPOINT_EVERY commits, a sixth of that.
    # (Measured while open: closing the last connection checkpoints and removes the log.)
    pages = path.with_name(path.name + "-wal").stat().st_size // 4096
    await db.close()
    assert pages < 3 * commits, f"the log grew to {pages} pages over {commits} commits"
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT balance FROM users WHERE id = ?", (user.id,)).fetchone()[0] == commits
    finally:
        check.close()


def test_the_database_password_is_redacted_from_logs():
    from core.settings import load_settings

    settings = load_settings(None, database_url="postgresql://bob:pw-in-url@db.example/lokiz")
    assert "pw-in-url" in settings.secrets()


async def test_a_migration_merged_below_the_newest_one_is_still_applied(database_url):
    # Branches merged in parallel can bring 006 after 010 already ran somewhere.
    db = await open_database(database_url)
    try:
        async with db.transaction() as uow:
            await uow.execute("DROP TABLE media_usage")
            await uow.execute("DELETE FROM schema_migrations WHERE version = 6")
        assert (await db.migrate()).versions == [6]
        async with db.read() as uow:
            assert await uow.fetchval("SELECT COUNT(*) FROM media_usage") == 0
        assert not await db.migrate()
    finally:
        await db.close()


@pytest.mark.both_stores
async def test_the_ledger_keeps_its_entries_and_rules_across_migration_14(database_url, monkeypatch):
    # A database made before 014 (the ledger rebuilt on SQLite, its job index narrowed)
    # keeps every entry, and the rebuilt table moves balances and refuses what it refused.
    import core.storage.postgres as pg_store
    import core.storage.sqlite as sqlite_store

    for module in (sqlite_store, pg_store):
        monkeypatch.setattr(module, "migrations", lambda d: [m for m in migrations(d) if m[0] < 14])
    db = await open_database(database_url)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=10)
    alice, _ = await ledger.ensure_user("telegram", "1")
    await ledger.charge_now(alice.id, 4, job_id="j1")
    await ledger.refund_now("j1")
    await ledger.charge_now(alice.id, 3, job_id="j2")
    before = await ledger.history(alice.id, 10)
    await db.close()
    monkeypatch.undo()

    db = await open_database(database_url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=10)
        assert await ledger.history(alice.id, 10) == before
        assert (await ledger.refund_now("j2")).delta == 3  # found through the narrowed index
        assert await ledger.refund_now("j2") is not None and await ledger.balance(alice.id) == 10
        entry = await ledger.charge_now(alice.id, 10, job_id="j3")
        assert entry.id > before[0].id and await ledger.balance(alice.id) == 0
        with pytest.raises(InsufficientCredits):
            await ledger.charge_now(alice.id, 1, job_id="j4")
        assert await ledger.balance(alice.id) == await ledger.ledger_sum(alice.id) == 0
        async with db.transaction() as uow:
            with pytest.raises(Exception, match="append-only"):
                await uow.execute("DELETE FROM ledger")
    finally:
        await db.close()
