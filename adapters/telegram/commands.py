"""The command menu Telegram shows, in English (default) and Korean."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand

from core.i18n import t

MENU = ("start", "help", "balance", "jobs", "job", "lang", "glitch", "remix", "feed", "top", "post", "delete")


def menu(lang: str) -> list[BotCommand]:
    return [BotCommand(command=name, description=t(lang, f"telegram.cmd.{name}")) for name in MENU]


async def publish_commands(bot: Bot) -> None:
    await bot.set_my_commands(menu("en"))
    await bot.set_my_commands(menu("ko"), language_code="ko")
