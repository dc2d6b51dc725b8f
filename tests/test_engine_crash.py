"""Kill -9 the engine at named points (mid-send, between the send and its record) while
other jobs are queued and running; after a restart every job ends delivered or refunded
(never both), each clip arrives once (a Telegram re-send after a restart at most once, and
saying so), each job has at most its one prediction, and the money adds up."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.credits import CreditLedger
from core.jobs import JobStore
from core.storage import open_database
from core.users import UserDirectory
from tests.fakes.replicate import FakeReplicate

ROOT = Path(__file__).resolve().parents[1]
JOBS = 12


async def _spawn(mode: str, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine_worker", mode, *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )


async def _jobs(url: str) -> dict[str, dict]:
    db = await open_database(url, migrate=False)
    try:
        async with db.read() as tx:
            rows = await tx.fetchall("SELECT * FROM jobs")
    finally:
        await db.close()
    return {row["id"]: dict(row) for row in rows}


def _marker(prompt: str) -> str | None:
    found = re.search(r"(?:scene|song)-\d+-end", prompt or "")
    return found.group(0) if found else None


@pytest.mark.both_stores
@pytest.mark.parametrize("crash_at", ["after_send", "before_send"])
async def test_sigkill_at_the_send_then_restart_delivers_or_refunds_each_once(
    tmp_path: Path, photo, av_video, crash_at: str, database_url: str
):
    async with FakeReplicate(default_delay=0.6) as fake:
        fake.set_media("google/veo-3-fast", av_video)
        fake.script("google/veo-3-fast", delay=0.3)
        fake.script("suno-ai/bark", delay=1.5)
        url = database_url
        log = tmp_path / "deliveries.log"
        env = {
            **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url,
            "MEDIA_DIR": str(tmp_path / "media"), "REPLICATE_API_TOKEN": fake.token,
            "REPLICATE_BASE_URL": fake.api_url, "MAX_CONCURRENT_JOBS": "3",
            "MAX_ACTIVE_JOBS_PER_USER": "3", "STARTER_CREDITS": "1000",
            "DELIVERY_LOG": str(log), "FRAME": str(photo), "LOG_LEVEL": "WARNING",
        }
        worker = await _spawn("submit", {**env, "LOKIZ_CRASH_AT": crash_at}, str(JOBS))
        assert await asyncio.wait_for(worker.wait(), 60) == -signal.SIGKILL  # killed itself there
        before = await _jobs(url)
        states = Counter(job["status"] for job in before.values())
        # Jobs in flight at the kill: some not started, and besides the one killed at its
        # send, another unfinished (predicting, or done and waiting for its turn to send;
        # which of the two depends on how busy the machine was).
        assert len(before) == JOBS and states["queued"], states
        assert states["running"] + states["succeeded"] >= 2, states
        mid_send = [jid for jid, job in before.items() if job["status"] == "succeeded"
                    and job["delivery_sends"] == 1]
        # The job killed at the send, and any other job that had recorded its send by then.
        assert mid_send, before
        copies_before = log.read_text().split("\n") if log.exists() else []
        sent_before = {jid for jid in mid_send if f"{jid} first" in copies_before}
        assert any((jid in sent_before) == (crash_at == "after_send") for jid in mid_send)

        again = await _spawn("recover", env)
        assert again.stdout is not None
        assert (await asyncio.wait_for(again.stdout.readline(), 90)).strip() == b"all done"
        await again.wait()

    db = await open_database(url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=1000)
        jobs = JobStore(db, ledger)
        finished = {j.id: j for j in await jobs.with_status("delivered")}
        refunded = {j.id: j for j in await jobs.with_status("failed", "canceled", "timed_out")}
        assert len(finished) + len(refunded) == JOBS and not set(finished) & set(refunded)
        async with db.read() as tx:
            entries = await tx.fetchall("SELECT kind, job_id, delta FROM ledger WHERE job_id IS NOT NULL")
        charges = [e["job_id"] for e in entries if e["kind"] == "charge"]
        refunds = [e["job_id"] for e in entries if e["kind"] == "refund"]
        assert sorted(charges) == sorted([*finished, *refunded]), "each job charged once"
        assert sorted(refunds) == sorted(refunded), "refunded ones once, delivered ones never"
        spent = -sum(e["delta"] for e in entries if e["kind"] == "charge")
        returned = sum(e["delta"] for e in entries if e["kind"] == "refund")
        assert spent - returned == sum(j.price for j in finished.values())
        for user_id in {j.user_id for j in (*finished.values(), *refunded.values())}:
            assert await ledger.balance(user_id) == await ledger.ledger_sum(user_id)

        # Every copy that reached the chat, as a list: a duplicate fails.
        copies = [tuple(line.split()) for line in log.read_text().splitlines()]
        expected = [(jid, "first") for jid in finished if jid not in mid_send]
        for jid in mid_send:
            expected.append((jid, "resent"))  # sent again once, saying so
            if jid in sent_before:
                expected.append((jid, "first"))  # the copy the kill interrupted
        assert sorted(copies) == sorted(expected)
        assert set(mid_send) <= set(finished)

        # Each job has at most its one prediction, and it is the one the job stored.
        by_marker = Counter(_marker(str(p.input.get("prompt"))) for p in fake.predictions.values())
        assert None not in by_marker and all(n == 1 for n in by_marker.values()), by_marker
        for job in (*finished.values(), *refunded.values()):
            marker = _marker(job.request.prompt)
            mine = [p.id for p in fake.predictions.values() if _marker(str(p.input.get("prompt"))) == marker]
            assert mine == ([job.prediction_id] if job.prediction_id else []), (job.id, mine)
        assert len(fake.predictions) == len([j for j in (*finished.values(), *refunded.values())
                                             if j.prediction_id])
    finally:
        await db.close()
