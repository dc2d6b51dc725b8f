"""`python -m bot migrate --copy-from sqlite:///…`: an embedded database moved into
PostgreSQL, as an operator runs it (a real subprocess), checked and refused when unsafe.

The SQLite side is made by the product itself (users, grants, jobs delivered and refunded,
sessions, posts and likes); the PostgreSQL side is a throwaway schema of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app import build_services
from core.catalogue import TEMPLATE, JobRequest
from core.credits import CreditLedger
from core.jobs import Job, JobStatus, JobStore
from core.sessions import SessionData, SessionStore, Step
from core.settings import load_settings
from core.social.posts import Posts
from core.storage import open_database
from core.users import UserDirectory
from tests.fakes.backend import ScriptedBackend
from tests.fakes.notifier import RecordingNotifier

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def migrate(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "migrate", *args], capture_output=True, text=True,
        cwd=cwd, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url},
    )


async def make_sqlite(path: Path, photo: Path, video: Path) -> dict[str, int]:
    """A SQLite database used the way the bot uses it; returns each user's balance."""
    settings = load_settings(None, database_url=f"sqlite:///{path}", media_dir=path.parent / "media",
                             starter_credits=50)
    services = await build_services(settings)
    try:
        services.engine.backend = ScriptedBackend(output_file=video)
        services.engine.notifiers["telegram"] = RecordingNotifier()
        await services.engine.start()
        ledger, users = services.ledger, []
        for n in range(5):
            user, _ = await ledger.ensure_user("telegram", str(100 + n), display_name=f"u{n}")
            users.append(user)
        web, _ = await ledger.ensure_user("web", "browser-1")
        await ledger.grant(users[0].id, 30, actor="admin:1", reason="thanks")
        async def submit(user_id: int, source_post: int | None = None) -> Job:
            return await services.engine.submit(
                user_id=user_id, platform="telegram", chat_id=str(user_id), language="en",
                request=JobRequest(TEMPLATE, prompt="a hug", image=str(photo),
                                   options={"duration": 4}, source_post=source_post),
            )

        async def delivered(job: Job) -> None:
            for _ in range(1000):
                if (await services.jobs.get(job.id)).status == JobStatus.DELIVERED:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"job {job.id} was not delivered")

        # Each delivered clip becomes a post; the second is a remix of the first.
        posts = Posts(services.db)
        jobs = [await submit(users[0].id)]
        await delivered(jobs[0])
        first = await posts.of_job(jobs[0].id)
        assert first is not None
        jobs.append(await submit(users[1].id, source_post=first.id))
        jobs.append(await submit(users[2].id))
        await services.engine.cancel(jobs[2].id)  # refunded
        await delivered(jobs[1])
        remix = await posts.of_job(jobs[1].id)
        assert remix is not None and remix.source_post_id == first.id
        await posts.toggle_like(first.id, users[3].id)
        await services.sessions.create(
            user_id=users[4].id, platform="telegram", chat_id="104", chat_kind="private",
            step=Step.FRAME, data=SessionData(video=str(video), duration=3.0, at=1.5))
        await services.engine.stop()
        return {user.id: await ledger.balance(user.id) for user in [*users, web]}
    finally:
        await services.close()


async def test_a_sqlite_database_is_copied_with_equal_counts_and_balances_and_keeps_working(
    database_url: str, tmp_path: Path, photo: Path, av_video: Path,
) -> None:
    source = tmp_path / "lokiz.db"
    balances = await make_sqlite(source, photo, av_video)
    assert len(set(balances.values())) > 1

    done = migrate("--copy-from", f"sqlite:///{source}", database_url=database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "6 balances equal" in out, out
    for table, rows in (("users", 6), ("ledger", None), ("jobs", 3), ("sessions", 1),
                        ("posts", 2), ("post_likes", 1)):
        line = next(line for line in out.splitlines() if line.strip().startswith(table + " "))
        if rows is not None:
            assert line.split()[1] == str(rows), line

    target = await open_database(database_url)
    try:
        ledger = CreditLedger(target, UserDirectory(target), starter_credits=50)
        for user_id, balance in balances.items():
            assert await ledger.balance(user_id) == balance
            assert await ledger.ledger_sum(user_id) == balance
        jobs = JobStore(target, ledger)
        statuses = sorted([job.status for user_id in balances
                           for job in await jobs.for_user(user_id)])
        assert statuses == [JobStatus.CANCELED, JobStatus.DELIVERED, JobStatus.DELIVERED]
        posts = Posts(target)
        chains = [await posts.chain(post_id) for post_id in (1, 2)]
        assert [len(chain) for chain in chains] == [1, 2]  # lineage kept (ids kept)
        session = await SessionStore(target).latest_with(5, "video")
        assert session is not None and session.data.at == 1.5
        # New rows get ids past the copied ones: the sequences moved.
        user, first = await ledger.ensure_user("discord", "new-one")
        assert first and user.id == 7 and await ledger.balance(user.id) == 50
        await ledger.grant(1, 5, actor="admin:1")
        assert await ledger.balance(1) == balances[1] + 5
    finally:
        await target.close()

    # A second copy finds rows there: refused, nothing changed.
    again = migrate("--copy-from", f"sqlite:///{source}", database_url=database_url, cwd=tmp_path)
    assert again.returncode == 1 and "already holds rows" in again.stderr, again.stderr
    target = await open_database(database_url)
    try:
        ledger = CreditLedger(target, UserDirectory(target), starter_credits=50)
        assert await ledger.balance(1) == balances[1] + 5
    finally:
        await target.close()


async def test_a_copy_whose_ledger_does_not_match_the_balances_writes_nothing(
    database_url: str, tmp_path: Path,
) -> None:
    source = tmp_path / "bad.db"
    db = await open_database(f"sqlite:///{source}")
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=50)
        user, _ = await ledger.ensure_user("telegram", "1")
        await ledger.ensure_user("telegram", "2")
        async with db.transaction() as tx:  # a balance its ledger does not sum to
            await tx.execute("UPDATE users SET balance = balance + 7 WHERE id = ?", (user.id,))
    finally:
        await db.close()
    failed = migrate("--copy-from", f"sqlite:///{source}", database_url=database_url, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout
    assert "balances differ" in failed.stderr and f"user {user.id}: 57 → 50" in failed.stderr
    target = await open_database(database_url)
    try:
        async with target.read() as tx:
            assert await tx.fetchval("SELECT count(*) FROM users") == 0
            assert await tx.fetchval("SELECT count(*) FROM ledger") == 0
    finally:
        await target.close()


async def test_copying_into_sqlite_or_from_a_missing_file_is_refused(tmp_path: Path,
                                                                     database_url: str) -> None:
    missing = migrate("--copy-from", f"sqlite:///{tmp_path / 'none.db'}",
                      database_url=database_url, cwd=tmp_path)
    assert missing.returncode == 2 and "no SQLite database" in missing.stderr
    (tmp_path / "a.db").touch()
    into_sqlite = migrate("--copy-from", f"sqlite:///{tmp_path / 'a.db'}",
                          database_url=f"sqlite:///{tmp_path / 'b.db'}", cwd=tmp_path)
    assert into_sqlite.returncode == 2 and "must be PostgreSQL" in into_sqlite.stderr
