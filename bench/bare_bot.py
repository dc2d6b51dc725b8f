"""The floor for bench/updates.py: a bare aiogram bot that answers `/balance` with fixed words.

    python bench/bare_bot.py TOKEN API_BASE

Long polling, as LOKIZ does by default; nothing else (no middleware, no database). It
runs on the event loop `python -m bot` runs on (uvloop where installed), so the two
bots differ by what LOKIZ does, not by their loops.
"""

from __future__ import annotations

import asyncio
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command
from aiogram.types import Message

# The same shape of answer as LOKIZ's (bench/updates.py waits for "Prices:").
ANSWER = "💳 Balance: 100 credits.\nPrices: template 20 · glitch 10 · music 5."


async def main(token: str, base: str) -> None:
    dp = Dispatcher()

    @dp.message(Command("balance"))
    async def balance(message: Message) -> None:
        await message.answer(ANSWER)

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(base)))
    await bot.delete_webhook(drop_pending_updates=False)
    await dp.start_polling(bot, allowed_updates=dp.resolve_used_update_types())


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main(sys.argv[1], sys.argv[2]))
