"""Long polling with `REDIS_URL` while Redis is unreachable: an update is retried, not lost.

aiogram's poller confirms an update to Telegram (the next getUpdates offset) before handling
it, so an update whose user's lock could not be taken in Redis would be gone: Telegram never
sends it again (by webhook it is answered 503 and Telegram does). `RedisOutageRetry` sits just
outside aiogram's FSM middleware, which takes that lock, and tries the update again with
backoff for `TELEGRAM_REDIS_RETRY_SECONDS` (Redis is often back within seconds). Past that the
user is told, in their language, that the bot is briefly unavailable: a message that needs no
Redis (the send budget lets a send through while Redis is down).

A retry repeats no work: the lock is taken before any handler runs, and everything after it
(the Desk) answers its own failures, so an update that fails here was not handled at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update

from adapters.telegram.filters import meant_for_bot
from adapters.telegram.middlewares import context_of
from adapters.telegram.render import Renderer, answer
from core.desk import Alert, ChatContext, Reply
from core.errors import SharedStoreDown
from core.i18n import t

log = logging.getLogger(__name__)

FIRST_DELAY = 0.25  # seconds before the second try; doubled after each failure …
MAX_DELAY = 4.0  # … up to this
STOP_WITHIN = 5.0  # seconds the stopping bot gives waiting updates to tell their users
# Handler data: the press was answered (its spinner stopped) while its update waited, so the
# Desk's alerts for it go to the chat (see `Outlet`).
PRESS_ANSWERED = "press_answered"

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


async def addressed(update: Update, bot: Bot) -> ChatContext | None:
    """Who would get an answer to `update`, in which chat; None for what the bot leaves
    unanswered anyway (group chatter not meant for it, channel posts, other bots) and for
    inline queries and presses on inline messages (no chat to say anything in)."""
    if update.callback_query is not None:
        return context_of(update.callback_query)
    message = update.message
    if message is None or not await meant_for_bot(message, bot, commands=True):
        return None
    return context_of(message)


class RedisOutageRetry(BaseMiddleware):
    """An update refused for lack of Redis (`SharedStoreDown`) is tried again with backoff for
    `window` seconds; then its user is asked to try again later. One WARNING line per update."""

    def __init__(self, renderer: Renderer, *, window: float) -> None:
        self.renderer = renderer
        self.window = window
        self._stopping = asyncio.Event()
        self._waiting: set[asyncio.Task[Any]] = set()  # updates that failed once, until done

    async def give_up(self, within: float = STOP_WITHIN) -> None:
        """The bot stops: updates still waiting for Redis are given up now, their users told
        (while the bot can still send), rather than dropped with the process."""
        self._stopping.set()
        if self._waiting:
            await asyncio.wait(set(self._waiting), timeout=within)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        task = asyncio.current_task()
        assert task is not None
        try:
            return await self._handle(handler, event, data, task)
        finally:
            self._waiting.discard(task)

    async def _handle(self, handler: Handler, event: Update, data: dict[str, Any],
                      task: asyncio.Task[Any]) -> Any:
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = FIRST_DELAY
        tries = 0
        failure: SharedStoreDown | None = None
        who: ChatContext | None = None
        while True:
            tries += 1
            try:
                result = await handler(event, dict(data))  # each try as the outer middlewares left it
            except SharedStoreDown as exc:
                failure = exc
            else:
                if tries > 1:
                    log.warning("telegram: update %d handled after %.1f s: Redis was unreachable (%s)",
                                event.update_id, loop.time() - started, failure)
                return result
            if tries == 1:
                self._waiting.add(task)
                who = await addressed(event, data["bot"])
                if who is None and event.message is not None:
                    return None  # a message the bot would not answer: nothing is lost
                if event.callback_query is not None:
                    await answer(event.callback_query)  # in Telegram's few seconds: no spinner
                    data[PRESS_ANSWERED] = True
            waited = loop.time() - started
            if waited >= self.window or self._stopping.is_set():
                log.warning("telegram: update %d not handled: Redis unreachable for %.0f s (%s)%s;"
                            " %s", event.update_id, waited, failure,
                            ", the bot is stopping" if self._stopping.is_set() else "",
                            "its user is asked to try again" if who else "nobody to tell")
                if who is not None:
                    await self._tell(who)
                return None
            await self._pause(min(delay, self.window - waited))
            delay = min(delay * 2, MAX_DELAY)

    async def _pause(self, seconds: float) -> None:
        """Wait before the next try; cut short when the bot stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _tell(self, ctx: ChatContext) -> None:
        """"Briefly unavailable, try again" in the user's language, in the update's chat."""
        lang = await self.renderer.desk.language(ctx.platform, ctx.user_id, ctx.language_code)
        try:
            said = Alert(t(lang, "telegram.briefly_unavailable"))
            await self.renderer.render(Reply([said], lang=lang), ctx)
        except TelegramAPIError as exc:
            log.warning("telegram: could not say the bot is unavailable: %s", type(exc).__name__)
