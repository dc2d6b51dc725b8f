"""1,000 concurrent jobs against the fake Replicate API, in polling and in webhook mode.

    python bench/jobs.py                      # 1000 jobs, model time 5–20 s
    python bench/jobs.py --jobs 1000 --min 5 --max 20
    python bench/jobs.py --quick              # 100 jobs, 1–3 s

Each phase builds the real stack — SQLite in a temp dir, the credit ledger, the
JobEngine (every job in flight at once), the ReplicateBackend on the official
client — against `tests/fakes/replicate.py`, whose predictions each take a
random model time. Phase 1 polls; phase 2 serves the verified webhook route of
`core.http.HttpServer` and the fake posts signed webhooks to it.

The fake runs in a child process (this file with `--serve-fake`), so the RSS
and event-loop figures are the bot's alone. Per phase it prints: all jobs
finished and the credits add up, RSS growth per in-flight job (target < 50 KB),
event-loop lag p99 (target < 50 ms), Replicate requests per job by kind, and
the polling GETs for jobs whose webhook arrived (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.backends.replicate import ReplicateBackend  # noqa: E402
from core.catalogue import MUSIC, TEMPLATE, JobRequest, TemplateCatalogue, build_models  # noqa: E402
from core.credits import CreditLedger  # noqa: E402
from core.engine import JobEngine  # noqa: E402
from core.http import REPLICATE_WEBHOOK_PATH, HttpServer  # noqa: E402
from core.jobs import Job, JobStore  # noqa: E402
from core.notify import OutputMedia, Receipt  # noqa: E402
from core.screens import Screen  # noqa: E402
from core.settings import load_settings  # noqa: E402
from core.storage import open_database  # noqa: E402
from core.users import UserDirectory  # noqa: E402

RSS_TARGET_KB = 50.0
LAG_TARGET_MS = 50.0
LAG_TICK = 0.010
# A real 16×16 JPEG (made by ffmpeg): the captured frame every template job uploads.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAgAAAQABAAD//gAPTGF2YzYzLjEuMTAyAP/bAEMACBAQExATFhYWFhYWGhgaGxsbGhoaGhsbGx0d"
    "HSIiIh0dHRsbHR0gICIiJSYlIyMiIyYmKCgoMDAuLjg4OkVFU//EAEsAAQEAAAAAAAAAAAAAAAAAAAAFAQEAAAAAAAAA"
    "AAAAAAAAAAAGEAEAAAAAAAAAAAAAAAAAAAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgAEAAQAwEiAAIRAAMRAP/aAAwD"
    "AQACEQMRAD8AggHY4//Z"
)
WARMUP_JOBS = 3
WARMUP_MODEL_SECONDS = 0.05


@dataclass(frozen=True)
class BenchConfig:
    jobs: int = 1000
    min_seconds: float = 5.0
    max_seconds: float = 20.0
    action: str = TEMPLATE  # template (one JPEG upload per job) or music (bark, no upload)
    jobs_per_user: int = 5
    creates_per_minute: int = 60_000
    requests_per_second: float = 1000.0
    phases: tuple[str, ...] = ("polling", "webhook")
    seed: int = 1
    phase_timeout: float = 600.0


@dataclass
class PhaseResult:
    mode: str
    jobs: int
    wall_seconds: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    charged: int = 0
    refunded: int = 0
    price: int = 0
    ledger_broken_users: int = 0
    rss_before: int = 0
    rss_peak: int = 0
    rss_all_in_flight: int = 0
    max_in_flight: int = 0
    lags: list[float] = field(default_factory=list)
    lag_spikes: list[tuple[float, float]] = field(default_factory=list)
    gc_pauses: list[tuple[int, float]] = field(default_factory=list)
    submit_seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    webhook_deliveries: int = 0
    webhooks_arrived: int = 0
    webhooks_accepted: int = 0
    polling_gets_after_webhook: int = 0
    result_latencies: list[float] = field(default_factory=list)
    timed_out_waiting: bool = False

    @property
    def finished(self) -> int:
        return sum(self.by_status.get(s, 0) for s in ("delivered", "failed", "canceled", "timed_out"))

    @property
    def all_delivered(self) -> bool:
        return self.delivered == self.jobs and self.by_status.get("delivered", 0) == self.jobs

    @property
    def credits_consistent(self) -> bool:
        return (
            self.charged == self.jobs * self.price
            and self.charged - self.refunded == self.by_status.get("delivered", 0) * self.price
            and self.ledger_broken_users == 0
        )

    @property
    def rss_per_job_kb(self) -> float:
        return max(0, self.rss_peak - self.rss_before) / 1024 / max(1, self.jobs)

    @property
    def lag_p99_ms(self) -> float:
        return percentile(self.lags, 99) * 1000

    def per_job(self, kind: str) -> float:
        return self.requests.get(kind, 0) / max(1, self.jobs)

    @property
    def passed(self) -> bool:
        ok = (
            self.all_delivered
            and self.credits_consistent
            and self.rss_per_job_kb < RSS_TARGET_KB
            and self.lag_p99_ms < LAG_TARGET_MS
        )
        if self.mode == "webhook":
            ok = ok and self.polling_gets_after_webhook == 0 and self.webhooks_arrived == self.jobs
        return ok


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def rss_bytes() -> int:
    """This process's resident set (VmRSS), in bytes."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# --- the fake Replicate API, in a child process ------------------------------------


def classify(method: str, path: str) -> str:
    """The kind of a Replicate request, for the per-job tally."""
    if method == "POST" and (
        path == "/v1/predictions" or (path.startswith("/v1/models/") and path.endswith("/predictions"))
    ):
        return "create"
    if method == "POST" and path.endswith("/cancel"):
        return "cancel"
    if method == "GET" and path == "/v1/predictions":
        return "list"
    if method == "GET" and path.startswith("/v1/predictions/"):
        return "get"
    if method == "POST" and path == "/v1/files":
        return "upload"
    if method == "GET" and path.startswith("/outputs/"):
        return "download"
    if path == "/v1/webhooks/default/secret":
        return "secret"
    return "other"


async def serve_fake(options: dict[str, Any]) -> None:
    """Child process: run FakeReplicate; answer JSON commands on stdin, one per line."""
    from tests.fakes.replicate import FakeReplicate

    # The bench paces creates itself (see the printed budget); the fake does not throttle.
    fake = FakeReplicate(create_limit=None)
    await fake.start()
    rng = random.Random(options["seed"])
    model = options["model"]
    for _ in range(options["warmup"]):
        fake.script_next(1, model=model, delay=WARMUP_MODEL_SECONDS)
    for _ in range(options["jobs"]):  # one random model time per prediction, in create order
        fake.script_next(1, model=model, delay=rng.uniform(options["min"], options["max"]))
    marks = {"requests": 0, "deliveries": 0, "seq": 0}

    def reply(payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload) + "\n")
        sys.stdout.flush()

    def stats() -> dict[str, Any]:
        requests = fake.requests[marks["requests"] :]
        deliveries = fake.webhook_deliveries[marks["deliveries"] :]
        predictions = [p for p in fake.predictions.values() if p.seq > marks["seq"]]
        arrived = {
            d.prediction_id
            for d in deliveries
            if d.event == "completed" and d.status is not None and 200 <= d.status < 300
        }
        kinds: dict[str, int] = {}
        gets_after_webhook = 0
        for request in requests:
            kind = classify(request.method, request.path)
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "get" and request.path.rsplit("/", 1)[-1] in arrived:
                gets_after_webhook += 1
        return {
            "requests": kinds,
            "throttled": sum(1 for r in requests if r.status == 429),
            "webhook_deliveries": len(deliveries),
            "webhooks_arrived": len(arrived),
            "polling_gets_after_webhook": gets_after_webhook,
            "completed_at": {p.id: p.completed_at for p in predictions if p.completed_at},
        }

    reply({"port": fake.port, "base_url": fake.base_url, "token": fake.token,
           "secret": fake.webhook_secret})
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)["cmd"]
            if command == "mark":
                marks["requests"] = len(fake.requests)
                marks["deliveries"] = len(fake.webhook_deliveries)
                marks["seq"] = max((p.seq for p in fake.predictions.values()), default=0)
                reply({"ok": True})
            elif command == "stats":
                reply(stats())
            elif command == "stop":
                break
    finally:
        await fake.stop()
    reply({"stopped": True})


class FakeProcess:
    """The parent's handle on the fake running in its child process."""

    def __init__(self, process: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self._process = process
        self.base_url: str = hello["base_url"]
        self.token: str = hello["token"]
        self.secret: str = hello["secret"]

    @classmethod
    async def start(cls, *, model: str, config: BenchConfig, warmup: int) -> FakeProcess:
        options = {"model": model, "jobs": config.jobs, "warmup": warmup, "seed": config.seed,
                   "min": config.min_seconds, "max": config.max_seconds}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), "--serve-fake", json.dumps(options),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            raise RuntimeError("the fake Replicate process did not start")
        return cls(process, json.loads(line))

    async def ask(self, cmd: str) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"cmd": cmd}).encode() + b"\n")
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the fake Replicate process died answering {cmd!r}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(Exception):
                await self.ask("stop")
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


# --- the bot side ---------------------------------------------------------------------


class NullNotifier:
    """A chat that accepts everything and keeps only counts and delivery times."""

    platform = "telegram"

    def __init__(self) -> None:
        self.statuses = 0
        self.delivered_at: dict[str, float] = {}

    def upload_limit(self, job: Job) -> int:
        return 1 << 31

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        self.statuses += 1
        return job.status_message_id or f"s-{job.id}"

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        self.delivered_at[job.id] = time.time()
        return Receipt(message_id=f"m-{job.id}")


class LoopWatch:
    """Oversleep of a 10 ms sleep (event-loop lag), with RSS, jobs in flight and GC pauses."""

    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine
        self.lags: list[float] = []
        self.spikes: list[tuple[float, float]] = []  # (seconds since start, lag) over 50 ms
        self.rss_peak = 0
        self.rss_all_in_flight = 0  # the last sample while the most jobs were in flight
        self.max_in_flight = 0
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._gc_started = 0.0
        self._started = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._started = time.perf_counter()
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._watch(), name="loop-watch")

    async def stop(self) -> None:
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._sample()

    async def _watch(self) -> None:
        tick = 0
        while True:
            before = time.perf_counter()
            await asyncio.sleep(LAG_TICK)
            after = time.perf_counter()
            lag = max(0.0, after - before - LAG_TICK)
            self.lags.append(lag)
            if lag * 1000 >= LAG_TARGET_MS:
                self.spikes.append((before - self._started, lag))
            tick += 1
            if tick % 5 == 0:
                self._sample()

    def _sample(self) -> None:
        in_flight = self.engine.running_count
        rss = rss_bytes()
        if in_flight >= self.max_in_flight:
            self.max_in_flight, self.rss_all_in_flight = in_flight, rss
        self.rss_peak = max(self.rss_peak, rss)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))


def request_for(action: str, image: Path, index: int) -> JobRequest:
    if action == MUSIC:
        return JobRequest(MUSIC, prompt=f"la la la, take {index}", options={})
    return JobRequest(TEMPLATE, prompt="two friends hug", image=str(image), template="ai_hug",
                      options={}, seed=index)


async def wait_until_finished(engine: JobEngine, jobs: JobStore, count: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        counts = await jobs.counts_by_status()
        finished = sum(counts[s] for s in ("delivered", "failed", "canceled", "timed_out"))
        if finished >= count and engine.running_count == 0:
            return True
        await asyncio.sleep(0.25)
    return False


async def run_phase(mode: str, config: BenchConfig, workdir: Path) -> PhaseResult:
    """One phase on a fresh database and a fresh fake: `mode` is polling or webhook."""
    settings = load_settings(None)
    models = build_models(settings)
    spec = models[config.action]
    result = PhaseResult(mode=mode, jobs=config.jobs, price=spec.price)
    workdir.mkdir(parents=True, exist_ok=True)
    image = workdir / "frame.jpg"
    image.write_bytes(TINY_JPEG)

    fake = await FakeProcess.start(model=spec.model_id, config=config, warmup=WARMUP_JOBS)
    db = await open_database(f"sqlite:///{workdir / 'bench.db'}")
    users_needed = math.ceil(config.jobs / config.jobs_per_user)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=config.jobs_per_user * spec.price)
    jobs = JobStore(db, ledger)
    backend = ReplicateBackend(
        fake.token, fake.base_url, webhook_secret=fake.secret,
        max_creates_per_minute=config.creates_per_minute,
        max_requests_per_second=config.requests_per_second,
    )
    notifier = NullNotifier()
    engine = JobEngine(
        jobs=jobs, ledger=ledger, models=models, backend=backend,
        notifiers={notifier.platform: notifier}, media_dir=workdir / "media",
        templates=TemplateCatalogue.load(), max_concurrent=config.jobs + WARMUP_JOBS,
        max_active_per_user=config.jobs + WARMUP_JOBS,
    )
    http: HttpServer | None = None
    watch = LoopWatch(engine)
    try:
        if mode == "webhook":
            http = HttpServer(db=db, engine=engine, jobs=jobs, host="127.0.0.1", port=0,
                              webhooks=backend)
            await http.start()
            engine.webhook_url = f"http://127.0.0.1:{http.bound_port}{REPLICATE_WEBHOOK_PATH}"
        await engine.start()
        people = [
            (await ledger.ensure_user("telegram", str(1000 + i)))[0] for i in range(users_needed)
        ]

        # Warm up (lazy imports, connection pools, first webhook) outside the measurement.
        warm_user = (await ledger.ensure_user("telegram", "warmup"))[0]
        await ledger.grant(warm_user.id, WARMUP_JOBS * spec.price, actor="bench")
        for i in range(WARMUP_JOBS):
            await engine.submit(user_id=warm_user.id, platform="telegram", chat_id="warmup",
                                language="en", request=request_for(config.action, image, i))
        if not await wait_until_finished(engine, jobs, WARMUP_JOBS, 60):
            raise RuntimeError("the warm-up jobs did not finish")
        await fake.ask("mark")
        accepted_before = engine.stats.webhooks_accepted
        gc.collect()
        result.rss_before = rss_bytes()
        watch.start()

        started = time.monotonic()
        submitted = await asyncio.gather(*(
            engine.submit(
                user_id=people[i % users_needed].id, platform="telegram", chat_id=str(i),
                language="en", request=request_for(config.action, image, i),
                reply_to_message_id=str(i),
            )
            for i in range(config.jobs)
        ))
        result.submit_seconds = time.monotonic() - started
        finished = await wait_until_finished(
            engine, jobs, config.jobs + WARMUP_JOBS, config.phase_timeout
        )
        result.wall_seconds = time.monotonic() - started
        result.timed_out_waiting = not finished
        await watch.stop()

        ids = {job.id for job in submitted}
        stored = [job for job in await jobs.with_status(
            "queued", "running", "succeeded", "delivered", "failed", "canceled", "timed_out"
        ) if job.id in ids]
        for job in stored:
            result.by_status[job.status] = result.by_status.get(job.status, 0) + 1
        result.delivered = sum(1 for job_id in notifier.delivered_at if job_id in ids)
        async with db.read() as tx:
            money = await tx.fetchall(
                "SELECT kind, COALESCE(SUM(ABS(delta)), 0) AS total FROM ledger"
                " WHERE kind IN ('charge', 'refund') AND user_id != ? GROUP BY kind",
                (warm_user.id,),
            )
            result.ledger_broken_users = int(await tx.fetchval(
                "SELECT COUNT(*) FROM users AS u WHERE u.balance !="
                " (SELECT COALESCE(SUM(delta), 0) FROM ledger WHERE user_id = u.id)"
            ))
        totals = {row["kind"]: int(row["total"]) for row in money}
        result.charged, result.refunded = totals.get("charge", 0), totals.get("refund", 0)

        fake_stats = await fake.ask("stats")
        result.requests = fake_stats["requests"]
        result.throttled = fake_stats["throttled"]
        result.webhook_deliveries = fake_stats["webhook_deliveries"]
        result.webhooks_arrived = fake_stats["webhooks_arrived"]
        result.polling_gets_after_webhook = fake_stats["polling_gets_after_webhook"]
        result.webhooks_accepted = engine.stats.webhooks_accepted - accepted_before
        completed_at: dict[str, float] = fake_stats["completed_at"]
        for job in stored:
            done = completed_at.get(job.prediction_id or "")
            delivered = notifier.delivered_at.get(job.id)
            if done is not None and delivered is not None:
                result.result_latencies.append(delivered - done)
        result.rss_peak = max(watch.rss_peak, result.rss_before)
        result.rss_all_in_flight = watch.rss_all_in_flight
        result.max_in_flight = watch.max_in_flight
        result.lags = watch.lags
        result.lag_spikes = watch.spikes
        result.gc_pauses = watch.gc_pauses
    finally:
        await watch.stop()
        await engine.stop()
        if http is not None:
            await http.stop()
        await backend.close()
        await db.close()
        await fake.stop()
    return result


# --- report -------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def print_phase(result: PhaseResult, config: BenchConfig) -> None:
    n = result.jobs
    print(f"\n== {result.mode} mode: {n} {config.action} jobs, model time "
          f"{config.min_seconds:g}–{config.max_seconds:g} s ==")
    others = ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items()) if k != "delivered")
    stuck = " (gave up waiting)" if result.timed_out_waiting else ""
    print(f"finished: {result.delivered}/{n} delivered ({others or 'no other outcome'}) "
          f"in {result.wall_seconds:.1f} s{stuck}  [{mark(result.all_delivered)}]")
    print(f"credits: charged {result.charged}, refunded {result.refunded}, "
          f"charges − refunds = {result.charged - result.refunded} "
          f"(delivered × price = {result.by_status.get('delivered', 0)} × {result.price}); "
          f"users whose balance ≠ ledger sum: {result.ledger_broken_users}  "
          f"[{mark(result.credits_consistent)}]")
    mb = 1024 * 1024
    print(f"RSS: {result.rss_before / mb:.1f} MB before submitting, "
          f"{result.rss_all_in_flight / mb:.1f} MB with {result.max_in_flight} jobs in flight, "
          f"{result.rss_peak / mb:.1f} MB peak → (peak − before) / {n} = "
          f"{result.rss_per_job_kb:.1f} KB per in-flight job (target < {RSS_TARGET_KB:g} KB)  "
          f"[{mark(result.rss_per_job_kb < RSS_TARGET_KB)}]")
    lags = result.lags
    print(f"event-loop lag: p50 {percentile(lags, 50) * 1000:.1f} ms, p99 "
          f"{result.lag_p99_ms:.1f} ms, max {max(lags, default=0) * 1000:.1f} ms over "
          f"{len(lags)} ticks (target p99 < {LAG_TARGET_MS:g} ms)  "
          f"[{mark(result.lag_p99_ms < LAG_TARGET_MS)}]")
    if result.lag_spikes:
        spikes = ", ".join(f"{lag * 1000:.0f} ms at {at:.1f} s" for at, lag in result.lag_spikes[:6])
        more = f" (+{len(result.lag_spikes) - 6} more)" if len(result.lag_spikes) > 6 else ""
        print(f"  ticks over {LAG_TARGET_MS:g} ms: {spikes}{more}")
    full = [pause for generation, pause in result.gc_pauses if generation == 2]
    print(f"  GC: {len(result.gc_pauses)} collections, {len(full)} full; longest full "
          f"{max(full, default=0) * 1000:.1f} ms; submitting all {n} took "
          f"{result.submit_seconds:.2f} s")
    kinds = ("create", "get", "upload", "download")
    extra = {k: v for k, v in result.requests.items() if k not in kinds}
    total = sum(result.requests.values()) / max(1, n)
    print("Replicate requests per job: "
          + ", ".join(f"{k} {result.per_job(k):.2f}" for k in kinds)
          + f"; total {total:.2f}"
          + (f"; also {', '.join(f'{k} {v}' for k, v in sorted(extra.items()))}" if extra else "")
          + f"; 429s {result.throttled}")
    if result.mode == "webhook":
        print(f"webhooks: {result.webhooks_arrived}/{n} jobs' webhooks arrived "
              f"({result.webhook_deliveries} deliveries, {result.webhooks_accepted} accepted by "
              f"the engine)")
        print(f"polling GETs for jobs whose webhook arrived: {result.polling_gets_after_webhook} "
              f"(target 0)  [{mark(result.polling_gets_after_webhook == 0)}]")
    else:
        print(f"webhooks: none (polling mode); polling GETs: {result.requests.get('get', 0)}")
    latencies = result.result_latencies
    if latencies:
        print(f"model done → delivered: p50 {percentile(latencies, 50):.2f} s, "
              f"p99 {percentile(latencies, 99):.2f} s, max {max(latencies):.2f} s")


async def run_bench(config: BenchConfig) -> dict[str, PhaseResult]:
    """Run the configured phases, one after the other in this process."""
    results: dict[str, PhaseResult] = {}
    with tempfile.TemporaryDirectory(prefix="lokiz-bench-jobs-") as tmp:
        for mode in config.phases:
            results[mode] = await run_phase(mode, config, Path(tmp) / mode)
    return results


async def bench(config: BenchConfig) -> int:
    what = ("template (google/veo-3-fast; one real 16×16 JPEG uploaded per job)"
            if config.action == TEMPLATE else "music (suno-ai/bark; no upload)")
    print(f"jobs: {config.jobs} {what}, {config.jobs_per_user} per user "
          f"({math.ceil(config.jobs / config.jobs_per_user)} users), all in flight at once; "
          f"model time uniform {config.min_seconds:g}–{config.max_seconds:g} s")
    real = (config.creates_per_minute, config.requests_per_second) == (500, 40.0)
    print(f"budget: ReplicateBackend(max_creates_per_minute={config.creates_per_minute}, "
          f"max_requests_per_second={config.requests_per_second:g}); "
          + ("the backend's defaults, sized for Replicate's real limit of 600 creates/min"
             if real else "raised for a local fake — not Replicate's real limit of 600 "
             "creates/min (--real-budget uses the backend's defaults)")
          + "; the fake's own create limit is off")
    print("engine: JobEngine defaults (poll 1 s → 8 s backoff, webhook fallback 60 s, "
          "status every 3 s); fake Replicate in a child process (figures are the bot's alone)")
    results = await run_bench(config)
    for index, result in enumerate(results.values()):
        print_phase(result, config)
        if index > 0:
            print(f"  (this phase reuses memory the previous one freed: for its own RSS figure "
                  f"run --phases {result.mode} alone)")
    passed = all(result.passed for result in results.values())
    print(f"\nall targets {'met' if passed else 'NOT met'}")
    return 0 if passed else 1


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=None, help="jobs per phase (default 1000)")
    parser.add_argument("--min", type=float, default=None, help="shortest model time, s (5)")
    parser.add_argument("--max", type=float, default=None, help="longest model time, s (20)")
    parser.add_argument("--quick", action="store_true", help="100 jobs of 1–3 s")
    parser.add_argument("--action", choices=(TEMPLATE, MUSIC), default=TEMPLATE)
    parser.add_argument("--phases", default="polling,webhook", help="polling,webhook")
    parser.add_argument("--creates-per-minute", type=int, default=60_000)
    parser.add_argument("--requests-per-second", type=float, default=1000.0)
    parser.add_argument("--real-budget", action="store_true",
                        help="use ReplicateBackend's defaults (500 creates/min, 40 requests/s)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    jobs, low, high = (100, 1.0, 3.0) if args.quick else (1000, 5.0, 20.0)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if not set(phases) <= {"polling", "webhook"}:
        parser.error("--phases takes polling and/or webhook")
    return BenchConfig(
        jobs=args.jobs or jobs,
        min_seconds=low if args.min is None else args.min,
        max_seconds=high if args.max is None else args.max,
        action=args.action,
        creates_per_minute=500 if args.real_budget else args.creates_per_minute,
        requests_per_second=40.0 if args.real_budget else args.requests_per_second,
        phases=phases,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["--serve-fake"]:
        asyncio.run(serve_fake(json.loads(argv[1])))
        return 0
    return asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
