"""Several real processes on one PostgreSQL: `python -m bot worker` processes deliver over
the (fake) Bot API with no chat adapter running; a SIGKILLed worker's jobs are taken up
by another through the stalled-token task; SIGTERM drains (/readyz 503, steps handed
back); the roles start the right parts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_services
from core.catalogue import MUSIC, JobRequest
from core.engine.cluster import RUN_TASK
from core.settings import load_settings
from core.storage import open_database
from tests.discord_world import CHANNEL, GUILD
from tests.fakes.discord import FakeDiscord
from tests.fakes.replicate import FakeReplicate
from tests.fakes.telegram import TelegramFake

ROOT = Path(__file__).resolve().parents[1]
BARK = "suno-ai/bark"
SENDS = ("sendAudio", "sendVideo", "sendDocument", "sendVoice")

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, url: str, home: Path, telegram: TelegramFake, replicate: FakeReplicate) -> None:
        self.url = url
        self.home = home
        self.telegram = telegram
        self.replicate = replicate
        self.procs: list[asyncio.subprocess.Process] = []
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": url,
            "MEDIA_DIR": str(home / "media"), "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE": telegram.base_url, "REPLICATE_API_TOKEN": replicate.token,
            "REPLICATE_BASE_URL": replicate.api_url, "MAX_CONCURRENT_JOBS": "4",
            "MAX_ACTIVE_JOBS_PER_USER": "2", "STARTER_CREDITS": "1000", "LOG_LEVEL": "INFO",
            "HTTP_PORT": "0", "WEB_STUDIO": "false", "DRAIN_SECONDS": "2",
        }

    async def spawn(self, *args: str, **env: str) -> asyncio.subprocess.Process:
        log = (self.home / f"{env.get('INSTANCE_ID', 'x')}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=ROOT, env={**self.env, **env},
            stdout=log, stderr=log,
        )
        self.procs.append(proc)
        return proc

    def log(self, instance: str) -> str:
        path = self.home / f"{instance}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def jobs(self) -> dict[str, dict]:
        db = await open_database(self.url, migrate=False)
        try:
            async with db.read() as tx:
                rows = await tx.fetchall("SELECT * FROM jobs")
        finally:
            await db.close()
        return {row["id"]: dict(row) for row in rows}

    async def refunds(self) -> Counter[str]:
        db = await open_database(self.url, migrate=False)
        try:
            async with db.read() as tx:
                rows = await tx.fetchall("SELECT job_id FROM ledger WHERE kind = 'refund'")
        finally:
            await db.close()
        return Counter(str(row["job_id"]) for row in rows)

    async def submit(self, count: int, *, platform: str = "telegram",
                     chat_id: str | None = None) -> list[str]:
        """Store and charge `count` music jobs from this (adapter-less, worker-less) process."""
        settings = load_settings(None, database_url=self.url, media_dir=self.home / "media",
                                 replicate_api_token=self.replicate.token,
                                 replicate_base_url=self.replicate.api_url,
                                 starter_credits=1000, web_studio=False, max_concurrent_jobs=4)
        services = await build_services(settings)
        try:
            await services.engine.start(worker=False)
            ids = []
            for i in range(count):
                user, _ = await services.ledger.ensure_user(platform, str(500 + i))
                job = await services.engine.submit(
                    user_id=user.id, platform=platform, chat_id=chat_id or str(500 + i),
                    language="en",
                    request=JobRequest(MUSIC, prompt=f"song {i}", seed=i))
                ids.append(job.id)
            return ids
        finally:
            await services.close()

    async def until(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not reached; jobs {await self.jobs()}")
            await asyncio.sleep(0.1)

    def sends(self) -> Counter[str]:
        return Counter(str(call.chat_id) for call in self.telegram.calls
                       if call.method in SENDS and call.ok)


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with FakeReplicate(default_delay=0.3) as replicate:
        telegram = TelegramFake(strict_chats=False)
        await telegram.start()
        db = await open_database(database_url)  # schema and queue tables, once
        await db.close()
        world = Cluster(database_url, tmp_path, telegram, replicate)
        try:
            yield world
        finally:
            for proc in world.procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            await telegram.stop()


async def test_a_sigkilled_workers_jobs_end_delivered_or_refunded_exactly_once(cluster: Cluster):
    cluster.replicate.script(BARK, delay=4.0)
    ids = await cluster.submit(6)
    first = await cluster.spawn("worker", INSTANCE_ID="w1")

    async def w1_holds_running() -> bool:
        return any(j["claimed_by"] == "w1" and j["status"] == "running"
                   for j in (await cluster.jobs()).values())

    await cluster.until(w1_holds_running, 240, "the first worker runs jobs")
    first.kill()  # SIGKILL: no drain, no hand-back
    assert await first.wait() == -signal.SIGKILL
    held = {jid for jid, j in (await cluster.jobs()).items()
            if j["claimed_by"] == "w1" and j["status"] in ("queued", "running", "succeeded")}
    assert held
    cluster.replicate.script(BARK, delay=0.5)
    await cluster.spawn("worker", INSTANCE_ID="w2")

    async def all_ended() -> bool:
        return all(j["status"] in ("delivered", "failed", "canceled", "timed_out")
                   for j in (await cluster.jobs()).values())

    await cluster.until(all_ended, 240, "every job ends")
    jobs = await cluster.jobs()
    refunds = await cluster.refunds()
    sends = cluster.sends()
    for jid in ids:
        job = jobs[jid]
        delivered = job["status"] == "delivered"
        assert delivered != (refunds[jid] == 1), (jid, job["status"], refunds[jid])
        assert refunds[jid] <= 1
        assert sends[job["chat_id"]] == (1 if delivered else 0), (jid, sends)
    assert all(jobs[jid]["status"] == "delivered" for jid in held)  # resumed, not refunded
    prediction_ids = [jobs[jid]["prediction_id"] for jid in ids]
    assert len(cluster.replicate.predictions) == len(set(prediction_ids)) == len(ids)
    assert "stalled worker re-queued" in cluster.log("w2") or "stalled worker re-queued" in cluster.log("w1")


async def test_sigterm_turns_readyz_false_and_hands_the_running_job_back(cluster: Cluster):
    cluster.replicate.script(BARK, delay=30.0)
    [job_id] = await cluster.submit(1)
    port = free_port()
    worker = await cluster.spawn("worker", INSTANCE_ID="d1", HTTP_PORT=str(port), DRAIN_SECONDS="3")
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async def ready() -> bool:
            try:
                async with http.get(f"{base}/readyz") as response:
                    return response.status == 200 and (await response.json())["database"] == "ok"
            except aiohttp.ClientError:
                return False

        await cluster.until(ready, 240, "/readyz answers 200")

        async def running() -> bool:
            return (await cluster.jobs())[job_id]["status"] == "running"

        await cluster.until(running, 60, "the job runs")
        worker.send_signal(signal.SIGTERM)

        async def draining() -> bool:
            async with http.get(f"{base}/readyz") as response:
                return response.status == 503 and (await response.json())["status"] == "draining"

        await cluster.until(draining, 2, "/readyz turns 503")  # well within DRAIN_SECONDS
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200  # alive, just not taking work
    assert await asyncio.wait_for(worker.wait(), 30) == 0
    job = (await cluster.jobs())[job_id]
    assert job["status"] == "running" and job["claimed_by"] is None  # handed back
    db = await open_database(cluster.url, migrate=False)
    try:
        async with db.read() as tx:
            pending = await tx.jobs.tasks_pending(RUN_TASK)
    finally:
        await db.close()
    assert pending == 1  # a new token for it
    # Another worker takes it up: one prediction (re-attached), one delivery.
    cluster.replicate.script(BARK, delay=0.3)
    await cluster.spawn("worker", INSTANCE_ID="d2")

    async def delivered() -> bool:
        return (await cluster.jobs())[job_id]["status"] == "delivered"

    await cluster.until(delivered, 240, "delivered by the second worker")
    assert len(cluster.replicate.predictions) == 1
    assert sum(cluster.sends().values()) == 1


async def test_roles_start_the_right_parts(cluster: Cluster, tmp_path: Path):
    # With SQLite the roles cannot be split: a clear refusal, nothing started.
    sqlite = {"DATABASE_URL": f"sqlite:///{tmp_path / 'solo.db'}", "INSTANCE_ID": "s"}
    for args in (("worker",), ("run", "--no-worker")):
        proc = await cluster.spawn(*args, **sqlite)
        assert await asyncio.wait_for(proc.wait(), 60) == 2
        assert "needs PostgreSQL" in cluster.log("s")
    adapters = await cluster.spawn("run", "--no-worker", INSTANCE_ID="a1")
    both = await cluster.spawn("run", INSTANCE_ID="b1")

    async def started() -> bool:
        return all("LOKIZ running" in cluster.log(i) for i in ("a1", "b1"))

    await cluster.until(started, 240, "both started")  # importing aiogram is slow on 2 cores
    assert "LOKIZ running: telegram; backend" in cluster.log("a1")
    assert "LOKIZ running: telegram, job worker b1" in cluster.log("b1")
    # A job submitted now runs on the instance with a worker only, delivered once.
    [job_id] = await cluster.submit(1)

    async def delivered() -> bool:
        return (await cluster.jobs())[job_id]["status"] == "delivered"

    await cluster.until(delivered, 60, "delivered")
    assert "Starting job lokiz.run_job" in cluster.log("b1")
    assert "Starting job" not in cluster.log("a1") and "Starting worker" not in cluster.log("a1")
    assert sum(cluster.sends().values()) == 1
    for proc in (adapters, both):
        proc.send_signal(signal.SIGTERM)
    for proc in (adapters, both):
        assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_a_worker_delivers_on_discord_over_rest_without_a_gateway(cluster: Cluster):
    async with FakeDiscord() as discord:
        discord.guild(GUILD, "Remix Club")
        discord.channel(GUILD, CHANNEL, "remix")
        ids = await cluster.submit(2, platform="discord", chat_id=str(CHANNEL))
        await cluster.spawn("worker", INSTANCE_ID="dc1", DISCORD_BOT_TOKEN=discord.token,
                            DISCORD_API_BASE=discord.api_base,
                            DISCORD_GATEWAY_URL=discord.gateway_url)

        async def delivered() -> bool:
            jobs = await cluster.jobs()
            return all(jobs[j]["status"] == "delivered" for j in ids)

        await cluster.until(delivered, 240, "delivered on Discord")
        clips = [m for m in discord.channel_messages(CHANNEL) if m["attachments"]]
        assert Counter(a["filename"] for m in clips for a in m["attachments"]) == Counter(
            f"lokiz-{j}.wav" for j in ids)
        assert not discord.connected  # REST only: no gateway session
        assert not discord.commands(GUILD) and not discord.commands()  # no command sync
