"""Telegram update throughput: the full LOKIZ stack against a bare aiogram echo bot.

    python bench/updates.py [--users 200] [--rounds 10]

Both bots poll the same fake Bot API (tests/fakes/telegram.py) in the same run.
`--users` chat users talk at once, each sending `--rounds` messages one after
another (the next when the previous was answered): the bare bot echoes the text,
the full stack answers `/balance` through its middlewares, the database user
lookup and the message catalogue. Every user talks once before measuring (so
the full stack's users exist, as for a bot in use). Prints throughput, p50/p99
update-to-reply latency (the user's message to the bot's sendMessage reaching
the server) and the ratio full/bare (target ≥ 0.7). A blast saturates both bots,
so its latencies say little about what a user feels.

    python bench/updates.py --rate 150 --seconds 20 --users 10000 [--mix first|returning|both] [--runs 3]

The open-loop mode: both bots run as subprocesses (`python -m bot` on SQLite and
the local backend; bench/bare_bot.py), each polling its own fake Bot API. `/balance`
arrives as a Poisson stream at `--rate` per second, at most one update in flight
per user, in turns of `--turn` seconds that alternate between the two bots (so a
noisy neighbour hits both), `--seconds` per bot per mix. Latency is the answer's
sendMessage reaching the fake minus the update's injection, matched per chat; CPU
is the bot process's own utime+stime (/proc/PID/stat) over its turns. `--mix first`:
every update comes from a new user; `--mix returning`: from users who all talked
to the bot before the window. Prints p50/p90/p99, CPU ms per update, the ratios
full/bare and the updates left unanswered; with `--runs`, each figure's median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import logging
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiogram import Bot, Dispatcher, F  # noqa: E402
from aiogram.types import Message  # noqa: E402

from tests.fakes.telegram import ChatUser, TelegramFake  # noqa: E402

TARGET = 0.7


@dataclass
class Result:
    name: str
    updates: int
    seconds: float
    latencies: list[float]

    @property
    def throughput(self) -> float:
        return self.updates / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    def line(self) -> str:
        return (f"{self.name:<24} {self.updates:>6} updates in {self.seconds:6.2f} s = "
                f"{self.throughput:7.1f}/s   p50 {self.percentile(0.50):6.1f} ms   "
                f"p99 {self.percentile(0.99):6.1f} ms")


class Replies:
    """Resolves a waiter when the bot's sendMessage into a chat reaches the fake server."""

    def __init__(self, fake: TelegramFake) -> None:
        self.waiting: dict[int, asyncio.Future[float]] = {}
        finish = fake._finish

        def observed(call: Any, outcome: Any) -> Any:
            response = finish(call, outcome)
            if call.method == "sendMessage" and call.ok:
                future = self.waiting.pop(call.params.get("chat_id"), None)
                if future is not None and not future.done():
                    future.set_result(time.perf_counter())
            return response

        fake._finish = observed  # type: ignore[method-assign]

    def expect(self, chat_id: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[chat_id] = future
        return future


async def converse(users: list[ChatUser], replies: Replies, text: str, rounds: int,
                   latencies: list[float] | None) -> None:
    async def one(user: ChatUser) -> None:
        for _ in range(rounds):
            answered = replies.expect(user.chat_id)
            sent = time.perf_counter()
            await user.send_text(text)
            got = await asyncio.wait_for(answered, 60)
            if latencies is not None:
                latencies.append(got - sent)

    await asyncio.gather(*(one(user) for user in users))


async def measure(name: str, fake: TelegramFake, replies: Replies, users: list[ChatUser],
                  dp: Dispatcher, bot: Bot, text: str, rounds: int) -> Result:
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, close_bot_session=False))
    try:
        await converse(users, replies, text, 1, None)  # warm-up: every user known
        latencies: list[float] = []
        started = time.perf_counter()
        await converse(users, replies, text, rounds, latencies)
        elapsed = time.perf_counter() - started
    finally:
        await dp.stop_polling()
        await polling
    return Result(name, len(latencies), elapsed, latencies)


async def bare_echo(fake: TelegramFake, replies: Replies, users: list[ChatUser], rounds: int) -> Result:
    dp = Dispatcher()

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    bot = fake.make_bot()
    try:
        return await measure("bare aiogram echo", fake, replies, users, dp, bot, "/balance", rounds)
    finally:
        await bot.session.close()


async def full_stack(fake: TelegramFake, replies: Replies, users: list[ChatUser], rounds: int) -> Result:
    from adapters.telegram.app import TelegramAdapter
    from bot.app import build_services
    from core.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="lokiz-bench-") as tmp:
        settings = load_settings(
            None, telegram_bot_token=fake.token, telegram_api_base=fake.base_url,
            database_url=f"sqlite:///{tmp}/lokiz.db", media_dir=Path(tmp) / "media",
            generator="local", http_port=0,
        )
        services = await build_services(settings)
        adapter = TelegramAdapter(settings, services.desk)
        try:
            return await measure("LOKIZ /balance (full)", fake, replies, users, adapter.dp,
                                 adapter.bot, "/balance", rounds)
        finally:
            await adapter.bot.session.close()
            await services.close()


async def main(users_count: int, rounds: int) -> float:
    logging.basicConfig(level=logging.WARNING)
    async with TelegramFake() as fake:
        replies = Replies(fake)
        users = [ChatUser(fake, 10_000 + i, f"User{i}") for i in range(users_count)]
        bare = await bare_echo(fake, replies, users, rounds)
        full = await full_stack(fake, replies, users, rounds)
    ratio = full.throughput / bare.throughput
    print(f"{users_count} concurrent users × {rounds} messages each, one fake Bot API, same run")
    print(bare.line())
    print(full.line())
    verdict = "ok" if ratio >= TARGET else "below target"
    print(f"ratio full/bare throughput: {ratio:.2f} (target ≥ {TARGET}: {verdict})")
    return ratio



# --- the open-loop mode ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# In LOKIZ's English /balance answer (account.balance) and in bench/bare_bot.py's.
ANSWER_MARK = "Prices:"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIXES = ("first", "returning")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its own, not its children's), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Answers:
    """Per chat, the injection time of the update in flight; its answer's arrival closes it."""

    def __init__(self, fake: TelegramFake) -> None:
        self.in_flight: dict[int, float] = {}
        self.latencies: list[float] = []
        self.sends = 0  # every sendMessage, answers or not (a first contact may get more than one)
        finish = fake._finish

        def observed(call: Any, outcome: Any) -> Any:
            response = finish(call, outcome)
            if call.method == "sendMessage" and call.ok:
                self.sends += 1
                if ANSWER_MARK in str(call.params.get("text", "")):
                    sent = self.in_flight.pop(int(call.params["chat_id"]), None)
                    if sent is not None:
                        self.latencies.append(time.perf_counter() - sent)
            return response

        fake._finish = observed  # type: ignore[method-assign]


class BotUnderTest:
    """One bot as a subprocess, polling its own fake Bot API."""

    def __init__(self, name: str, home: Path, profile: Path | None = None) -> None:
        self.name = name
        self.home = home
        self.profile = profile
        self.fake = TelegramFake()
        self.answers = Answers(self.fake)
        self.process: subprocess.Popen[bytes] | None = None
        self.users: dict[int, ChatUser] = {}
        self.warmed: set[int] = set()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        if self.name == "bare":
            return [sys.executable, str(ROOT / "bench" / "bare_bot.py"), self.fake.token, self.fake.base_url]
        if self.profile is not None:
            return [sys.executable, str(ROOT / "bench" / "profiled_bot.py"), str(self.profile)]
        return [sys.executable, "-m", "bot"]

    async def start(self) -> None:
        await self.fake.start()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_", "WEB_"))}
        env.update({
            "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": self.fake.token,
            "TELEGRAM_API_BASE": self.fake.base_url, "DATABASE_URL": f"sqlite:///{self.home / 'lokiz.db'}",
            "MEDIA_DIR": str(self.home / "media"), "HTTP_PORT": "0", "GENERATOR": "local",
            "LOG_LEVEL": "WARNING",
        })
        self.log = (self.home / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(  # noqa: ASYNC220 - starts it, waits for nothing
            self.command(), cwd=self.home, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while not any(call.method == "getUpdates" for call in self.fake.calls[-20:]):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = (self.home / f"{self.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} bot did not start:\n{tail}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            for _ in range(2400):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.process.kill()
                self.process.wait()
        self.log.close()
        await self.fake.stop()

    def user(self, user_id: int) -> ChatUser:
        found = self.users.get(user_id)
        if found is None:
            found = self.users[user_id] = ChatUser(self.fake, user_id, f"User{user_id}")
        return found

    def send(self, user_id: int) -> None:
        user = self.user(user_id)
        self.answers.in_flight[user.chat_id] = time.perf_counter()
        user._post({"text": "/balance", "entities": [{"type": "bot_command", "offset": 0, "length": 8}]})

    async def drain(self, timeout: float) -> int:
        """Wait for the answers in flight; how many never came (they stop counting as in flight)."""
        deadline = time.monotonic() + timeout
        while self.answers.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110 - the fake's callback sets no event
            await asyncio.sleep(0.02)
        missing = len(self.answers.in_flight)
        self.answers.in_flight.clear()
        return missing

    async def warm(self, user_ids: list[int], together: int = 32) -> int:
        """Each user talks once (unmeasured), `together` at a time; how many got no answer."""
        missing = 0
        self.answers.latencies = []  # not measured
        fresh = [u for u in dict.fromkeys(user_ids) if u not in self.warmed]
        for start in range(0, len(fresh), together):
            for user_id in fresh[start:start + together]:
                self.send(user_id)
            missing += await self.drain(30)
        self.warmed.update(fresh)
        return missing


@dataclass
class Window:
    """One bot's measured turns in one mix of one run."""

    bot: str
    updates: int = 0
    cpu: float = 0.0
    sends: int = 0
    unanswered: int = 0
    latencies: list[float] | None = None
    driver_cpu: float = 0.0  # this process's (the fake Bot API and the generator)

    def pct(self, share: float) -> float:
        ordered = sorted(self.latencies or [0.0])
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / max(self.updates, 1)

    def figures(self) -> dict[str, float]:
        return {"p50": self.pct(0.50), "p90": self.pct(0.90), "p99": self.pct(0.99),
                "cpu_ms": self.cpu_ms, "sends": self.sends / max(self.updates, 1),
                "unanswered": float(self.unanswered), "updates": float(self.updates),
                "driver_ms": self.driver_cpu * 1000 / max(self.updates, 1)}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Keep this process's garbage collector out of a measured turn. The fakes keep every
    call, so a full collection of this process grows with the run (30-220 ms seen): it paused
    the fake Bot API and the generator, answering neither bot meanwhile, and landed in
    whichever bot's turn it fell into, as that bot's tail. Collected before the turn instead."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def measured_turn(bot: BotUnderTest, window: Window, pick: Callable[[set[int]], int],
                        rate: float, seconds: float, rng: random.Random) -> None:
    """A Poisson stream of `/balance` into `bot` for `seconds`, then its answers drained."""
    with collector_paused():
        await _stream(bot, window, pick, rate, seconds, rng)


async def _stream(bot: BotUnderTest, window: Window, pick: Callable[[set[int]], int],
                  rate: float, seconds: float, rng: random.Random) -> None:
    answers = bot.answers
    answers.latencies = window.latencies if window.latencies is not None else []
    window.latencies = answers.latencies
    sends, cpu, own = answers.sends, cpu_seconds(bot.pid), time.process_time()
    loop = asyncio.get_running_loop()
    start = due = loop.time()
    while True:
        due += rng.expovariate(rate)
        if due - start > seconds:
            break
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        busy = {chat for chat in answers.in_flight}
        bot.send(pick(busy))
        window.updates += 1
    window.unanswered += await bot.drain(30)
    window.cpu += cpu_seconds(bot.pid) - cpu
    window.driver_cpu += time.process_time() - own
    window.sends += answers.sends - sends
    answers.latencies = []  # what comes later is not this window's


@dataclass
class OpenLoopConfig:
    rate: float = 150.0
    seconds: float = 20.0
    users: int = 10_000
    mixes: tuple[str, ...] = MIXES
    runs: int = 1
    turn: float = 5.0
    seed: int = 1
    profile: Path | None = None  # write a pyinstrument profile of the full bot here


async def run_open_loop(config: OpenLoopConfig, out: Callable[[str], None] = print,
                        ) -> list[dict[str, dict[str, Window]]]:
    """Per run, per mix, the two bots' windows."""
    rng = random.Random(config.seed)
    results: list[dict[str, dict[str, Window]]] = []
    with tempfile.TemporaryDirectory(prefix="lokiz-bench-") as tmp:
        bots = {"bare": BotUnderTest("bare", Path(tmp)),
                "full": BotUnderTest("full", Path(tmp), config.profile)}
        try:
            for bot in bots.values():
                await bot.start()
            fresh = 1_000_000  # first-contact ids, never reused; returning ids are 1..users
            for run in range(config.runs):
                mixes: dict[str, dict[str, Window]] = {}
                for mix in config.mixes:
                    windows = {name: Window(name, latencies=[]) for name in bots}
                    turns = max(1, round(config.seconds / config.turn))
                    per_turn = config.seconds / turns
                    # bare, full, bare, full… in one run, full first in the next.
                    order = [("bare", "full")[(step + run) % 2] for step in range(turns * 2)]
                    drawn: list[list[int]] = []
                    if mix == "returning":  # who will talk, each of them warmed up before any turn
                        expected = int(config.rate * per_turn * 1.5) + 10
                        drawn = [[rng.randint(1, config.users) for _ in range(expected)] for _ in order]
                        for name, bot in bots.items():
                            missing = await bot.warm([u for n, d in zip(order, drawn, strict=True) if n == name for u in d])
                            if missing:
                                out(f"  warning: {missing} warm-up updates unanswered by {name}")
                    for step, name in enumerate(order):
                        bot = bots[name]
                        if mix == "first":
                            ids = itertools.count(fresh)
                            fresh += int(config.rate * per_turn * 3) + 100

                            def pick(busy: set[int], _ids: Iterator[int] = ids) -> int:
                                return next(_ids)
                        else:
                            queue, warmed = iter(drawn[step]), sorted(bot.warmed)

                            def pick(busy: set[int], _queue: Iterator[int] = queue,
                                     _warmed: list[int] = warmed) -> int:
                                for user_id in _queue:
                                    if user_id not in busy:
                                        return user_id
                                while True:  # past the drawn list: any user already warmed
                                    user_id = rng.choice(_warmed)
                                    if user_id not in busy:
                                        return user_id
                        await measured_turn(bot, windows[name], pick, config.rate, per_turn, rng)
                    mixes[mix] = windows
                    report(f"run {run + 1}, {mix} contacts", windows, out)
                results.append(mixes)
        finally:
            for bot in bots.values():
                with contextlib.suppress(Exception):
                    await bot.stop()
    if config.runs > 1:
        for mix in config.mixes:
            report(f"median of {config.runs} runs, {mix} contacts",
                   {name: median_window([r[mix][name] for r in results]) for name in ("bare", "full")},
                   out, medians=True)
            ratios = [(r[mix]["full"].figures(), r[mix]["bare"].figures()) for r in results]
            p99 = statistics.median(f["p99"] / max(b["p99"], 1e-9) for f, b in ratios)
            cpu = statistics.median(f["cpu_ms"] / max(b["cpu_ms"], 1e-9) for f, b in ratios)
            out(f"  median of the runs' own ratios (each from one run): p99 {p99:.2f}, CPU {cpu:.2f}")
    return results


class Medians(Window):
    def __init__(self, bot: str, figures: dict[str, float]) -> None:
        super().__init__(bot)
        self._figures = figures

    def figures(self) -> dict[str, float]:
        return self._figures


def median_window(windows: list[Window]) -> Window:
    keys = windows[0].figures().keys()
    return Medians(windows[0].bot, {k: statistics.median(w.figures()[k] for w in windows) for k in keys})


def report(title: str, windows: dict[str, Window], out: Callable[[str], None], *,
           medians: bool = False) -> None:
    """Each bot's figures and the ratios full/bare (with `medians`, of the medians)."""
    out(f"{title} (load average {os.getloadavg()[0]:.1f}):")
    figures = {name: w.figures() for name, w in windows.items()}
    for name, label in (("full", "LOKIZ (full)"), ("bare", "bare aiogram")):
        f = figures[name]
        out(f"  {label:<13} p50 {f['p50']:6.1f} ms  p90 {f['p90']:6.1f} ms  p99 {f['p99']:6.1f} ms"
            f"  CPU {f['cpu_ms']:5.2f} ms/update  sends/update {f['sends']:.2f}"
            f"  updates {f['updates']:.0f}  unanswered {f['unanswered']:.0f}")
    full, bare = figures["full"], figures["bare"]
    out(f"  (the bench's own fake Bot API and generator: {full['driver_ms']:.2f} / {bare['driver_ms']:.2f}"
        " ms CPU per update in the full / bare turns)")
    out(f"  ratio full/bare: p99 {full['p99'] / max(bare['p99'], 1e-9):.2f} (target ≤ 2.0),"
        f" CPU {full['cpu_ms'] / max(bare['cpu_ms'], 1e-9):.2f} (target ≤ 1.3)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=None,
                        help="blast: concurrent users (200); open loop: returning users' pool (10,000)")
    parser.add_argument("--rounds", type=int, default=10, help="blast: messages per user")
    parser.add_argument("--rate", type=float, default=None, help="updates per second: the open-loop mode")
    parser.add_argument("--seconds", type=float, default=20.0, help="open loop: measured seconds per bot and mix")
    parser.add_argument("--mix", choices=(*MIXES, "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="open loop: runs, then the median of each figure")
    parser.add_argument("--turn", type=float, default=5.0, help="open loop: seconds before the other bot's turn")
    parser.add_argument("--profile", type=Path, default=None, help="open loop: pyinstrument HTML of the full bot")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.rate is None:
        asyncio.run(main(args.users or 200, args.rounds))
    else:
        asyncio.run(run_open_loop(OpenLoopConfig(
            rate=args.rate, seconds=args.seconds, users=args.users or 10_000,
            mixes=MIXES if args.mix == "both" else (args.mix,), runs=args.runs, turn=args.turn,
            profile=args.profile,
        )))
