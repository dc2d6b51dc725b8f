"""Kill -9 the engine while jobs are queued, running and downloading; after a restart
every job ends finished or refunded (never both) and the money adds up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core.credits import CreditLedger
from core.jobs import JobStore
from core.storage import open_database
from core.users import UserDirectory
from tests.fakes.replicate import FakeReplicate

ROOT = Path(__file__).resolve().parents[1]


async def _spawn(mode: str, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine_worker", mode, *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )


async def _statuses(url: str) -> dict[str, str]:
    db = await open_database(url, migrate=False)
    try:
        async with db.read() as tx:
            rows = await tx.fetchall("SELECT id, status FROM jobs")
    finally:
        await db.close()
    return {row["id"]: row["status"] for row in rows}


async def test_sigkill_mid_jobs_then_restart_finishes_or_refunds_each_once(tmp_path: Path, photo, av_video):
    async with FakeReplicate(default_delay=0.6) as fake:
        fake.set_media("google/veo-3-fast", av_video)
        fake.script("google/veo-3-fast", delay=0.3)
        fake.script("suno-ai/bark", delay=1.5)
        url = f"sqlite:///{tmp_path / 'crash.db'}"
        log = tmp_path / "deliveries.log"
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url,
            "MEDIA_DIR": str(tmp_path / "media"), "REPLICATE_API_TOKEN": fake.token,
            "REPLICATE_BASE_URL": fake.api_url, "MAX_CONCURRENT_JOBS": "3",
            "MAX_ACTIVE_JOBS_PER_USER": "3", "STARTER_CREDITS": "1000",
            "DELIVERY_LOG": str(log), "FRAME": str(photo), "LOG_LEVEL": "WARNING",
        }
        worker = await _spawn("submit", env, "12")
        assert worker.stdout is not None
        assert (await asyncio.wait_for(worker.stdout.readline(), 30)).strip() == b"submitted"
        for _ in range(1000):  # kill once jobs are spread over the states
            now = set((await _statuses(url)).values())
            if {"queued", "running"} <= now and now & {"delivered", "succeeded"}:
                break
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        before = await _statuses(url)
        assert "queued" in before.values() and "running" in before.values(), before

        again = await _spawn("recover", env)
        assert again.stdout is not None
        assert (await asyncio.wait_for(again.stdout.readline(), 60)).strip() == b"all done"
        await again.wait()

    db = await open_database(url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=1000)
        jobs = JobStore(db, ledger)
        finished = {j.id: j for j in await jobs.with_status("delivered")}
        refunded = {j.id: j for j in await jobs.with_status("failed", "canceled", "timed_out")}
        assert len(finished) + len(refunded) == 12
        async with db.read() as tx:
            entries = await tx.fetchall("SELECT kind, job_id, delta FROM ledger WHERE job_id IS NOT NULL")
        charges = {e["job_id"]: -e["delta"] for e in entries if e["kind"] == "charge"}
        refunds = {e["job_id"]: e["delta"] for e in entries if e["kind"] == "refund"}
        assert set(charges) == set(finished) | set(refunded)
        assert set(refunds) == set(refunded)  # refunded ones once (unique keys), finished ones never
        assert sum(charges.values()) - sum(refunds.values()) == sum(j.price for j in finished.values())
        delivered_lines = log.read_text().split()
        assert set(delivered_lines) == set(finished)
        creates_per_job = {}
        for prediction in fake.predictions.values():
            for job_id in finished | refunded:
                if fake._belongs_to(prediction, job_id):
                    creates_per_job[job_id] = creates_per_job.get(job_id, 0) + 1
        assert all(count == 1 for count in creates_per_job.values()), creates_per_job
        for user_id in {j.user_id for j in finished.values()}:
            assert await ledger.balance(user_id) == await ledger.ledger_sum(user_id)
    finally:
        await db.close()
