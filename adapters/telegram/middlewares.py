"""The outer middleware: who and where (the core `ChatContext`), for what is meant for the bot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject

from adapters.telegram.filters import meant_for_bot
from core.desk import ChatContext

PLATFORM = "telegram"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def context_of(event: TelegramObject) -> ChatContext | None:
    """The core context of a message or button press; None for what LOKIZ does not serve
    (channel posts, anonymous admins, other bots, inline messages)."""
    if isinstance(event, Message):
        user, chat, message_id = event.from_user, event.chat, event.message_id
    elif isinstance(event, CallbackQuery) and event.message is not None:
        user, chat, message_id = event.from_user, event.message.chat, event.message.message_id
    else:
        return None
    if user is None or user.is_bot or chat.type == "channel":
        return None
    return ChatContext(
        platform=PLATFORM, user_id=str(user.id), chat_id=str(chat.id),
        chat_kind="private" if chat.type == "private" else "group",
        display_name=user.full_name, username=user.username, language_code=user.language_code,
        message_id=str(message_id),
    )


class ChatContextMiddleware(BaseMiddleware):
    """Injects `ctx`; group chatter not meant for the bot (privacy mode off) stops here."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        ctx = context_of(event)
        if ctx is None:
            return None
        if isinstance(event, Message) and not await meant_for_bot(event, data["bot"], commands=True):
            return None
        data["ctx"] = ctx
        return await handler(event, data)
