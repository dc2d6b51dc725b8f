"""Outer middlewares: who and where (the core `ChatContext`), the per-user rate limit,
and a last line of defence that answers any unexpected error instead of going silent."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update, User

from adapters.telegram.filters import meant_for_bot
from adapters.telegram.keyboards import MAX_ALERT, clip
from core.i18n import normalize_language, t
from core.studio.replies import ChatContext
from core.studio.studio import Studio
from core.users import UserDirectory

log = logging.getLogger(__name__)
PLATFORM = "telegram"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def chat_context(user: User, chat: Chat, message_id: int | None) -> ChatContext:
    return ChatContext(
        platform=PLATFORM,
        user_id=str(user.id),
        chat_id=str(chat.id),
        chat_kind="private" if chat.type == "private" else "group",
        display_name=user.full_name,
        username=user.username,
        language_code=user.language_code,
        message_id=str(message_id) if message_id is not None else None,
    )


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
    return chat_context(user, chat, message_id)


async def language_for(users: UserDirectory, studio: Studio, ctx: ChatContext) -> str:
    """The user's language with a read only (no user is created for it)."""
    with contextlib.suppress(Exception):
        user = await users.find(ctx.platform, ctx.user_id)
        if user is not None:
            return studio.language_of(user, ctx)
    return normalize_language(ctx.language_code, studio.default_language)


async def say_briefly(event: TelegramObject, text: str) -> None:
    """A short answer to a press (an alert) or a message (a reply); never raises."""
    try:
        if isinstance(event, CallbackQuery):
            try:
                await event.answer(clip(text, MAX_ALERT), show_alert=True)
                return
            except TelegramAPIError:  # already answered or too old: say it in the chat
                if not isinstance(event.message, Message):
                    return
                await event.message.answer(text)
                return
        if isinstance(event, Message):
            await event.reply(text)
    except Exception:
        log.warning("could not tell the user about a problem", exc_info=True)


class ChatContextMiddleware(BaseMiddleware):
    """Injects `ctx` (the core ChatContext) and applies the per-user rate limit."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        ctx = context_of(event)
        if ctx is None:
            return None
        services = data["services"]
        if isinstance(event, Message) and not await meant_for_bot(event, data["bot"], commands=True):
            return None  # group chatter (privacy mode off): not ours, not rate-limited, not answered
        if not services.rate_limiter.allow(f"{PLATFORM}:{ctx.user_id}"):
            lang = await language_for(services.ledger.users, services.studio, ctx)
            await say_briefly(event, t(lang, "error.slow_down"))
            return None
        data["ctx"] = ctx
        return await handler(event, data)


class ErrorMiddleware(BaseMiddleware):
    """Any unexpected exception: logged with its traceback, answered with `error.generic`."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        try:
            return await handler(event, data)
        except Exception:
            assert isinstance(event, Update)
            inner = event.message or event.callback_query
            log.exception("update %s failed", event.update_id)
            ctx = context_of(inner) if inner is not None else None
            if inner is None or ctx is None:
                return None
            services = data["services"]
            lang = await language_for(services.ledger.users, services.studio, ctx)
            await say_briefly(inner, t(lang, "error.generic"))
            return None
