"""Filters: "is this message meant for the bot"."""

from __future__ import annotations

from aiogram import Bot
from aiogram.filters import Filter
from aiogram.types import Message


async def meant_for_bot(message: Message, bot: Bot, *, commands: bool) -> bool:
    """Private messages, and group messages that reply to the bot, mention it (or, if
    `commands`, are commands). In privacy mode Telegram only delivers those anyway; with
    privacy off (or the bot an admin) this keeps it out of conversations not about it."""
    if message.chat.type == "private":
        return True
    words = message.text or message.caption or ""
    if commands and words.startswith("/"):
        return True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot.id:
        return True
    me = await bot.me()
    return bool(me.username) and f"@{me.username}".lower() in words.lower()


class ForTheBot(Filter):
    """Messages meant for the bot (see `meant_for_bot`), commands aside."""

    async def __call__(self, message: Message, bot: Bot) -> bool:
        return await meant_for_bot(message, bot, commands=False)


def without_mention(text: str, username: str | None) -> str:
    """The text with `@botname` taken out (group messages that mention the bot)."""
    if not username:
        return text
    lowered, needle = text.lower(), f"@{username.lower()}"
    at = lowered.find(needle)
    while at != -1:
        text = (text[:at] + text[at + len(needle):]).strip()
        lowered = text.lower()
        at = lowered.find(needle)
    return text
