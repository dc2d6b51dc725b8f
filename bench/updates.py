"""Telegram update throughput: the full LOKIZ stack against a bare aiogram echo bot.

    python bench/updates.py [--users 200] [--rounds 10]

Both bots poll the same fake Bot API (tests/fakes/telegram.py) in the same run.
`--users` chat users talk at once, each sending `--rounds` messages one after
another (the next when the previous was answered): the bare bot echoes the text,
the full stack answers `/balance` through its middlewares, the database user
lookup and the message catalogue. Every user talks once before measuring (so
the full stack's users exist, as for a bot in use). Prints throughput, p50/p99
update-to-reply latency (the user's message to the bot's sendMessage reaching
the server) and the ratio full/bare (target ≥ 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.rounds))
