"""Social in Telegram: /feed, /top, /post ID, /delete ID, and inline mode (`@bot words`)."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    InlineQuery,
    InlineQueryResultCachedVideo,
    InlineQueryResultsButton,
    Message,
)

from adapters.telegram.render import Renderer
from core.desk import (
    ChatContext,
    Desk,
    Event,
    FeedAsked,
    InlineClip,
    PostAsked,
    PostDeleteAsked,
    TopAsked,
    Unusable,
)

log = logging.getLogger(__name__)

PLATFORM = "telegram"
# Telegram caches an inline answer this long; personal, so each person sees their own clips.
INLINE_CACHE_SECONDS = 10
# A "slow down" answer is cached briefly: the next keystroke after it asks again.
SLOW_DOWN_CACHE_SECONDS = 2
SLOW_DOWN_START = "slow"  # the /start parameter of its button (a plain /start: the welcome)
MAX_INLINE_QUERY = 64  # Telegram's own limit on what can be typed after @bot


def router() -> Router:
    area = Router(name="social")

    @area.message(Command("feed"))
    async def feed(message: Message, ctx: ChatContext, desk: Desk, renderer: Renderer) -> None:
        await desk.serve(FeedAsked(ctx), renderer.outlet(ctx))

    @area.message(Command("top"))
    async def top(message: Message, ctx: ChatContext, desk: Desk, renderer: Renderer) -> None:
        await desk.serve(TopAsked(ctx), renderer.outlet(ctx))

    @area.message(Command("post", "delete"))
    async def post(message: Message, command: CommandObject, ctx: ChatContext, desk: Desk,
                   renderer: Renderer) -> None:
        typed = (command.args or "").strip()
        deleting = command.command.lower() == "delete"
        event: Event
        if not typed:
            event = Unusable(ctx, "telegram.delete_usage" if deleting else "telegram.post_usage")
        elif deleting:
            event = PostDeleteAsked(ctx, typed)
        else:
            event = PostAsked(ctx, typed)
        await desk.serve(event, renderer.outlet(ctx))

    @area.inline_query()
    async def inline(query: InlineQuery, desk: Desk) -> None:
        """The asker's own recent clips, by file id (sharing uploads nothing); someone typing
        faster than the Desk's inline limit gets no clips and a "slow down" button."""
        user = query.from_user
        found = await desk.own_clips(PLATFORM, str(user.id), query.query[:MAX_INLINE_QUERY],
                                     user.language_code)
        try:
            if found.slow_down is not None:
                button = InlineQueryResultsButton(text=found.slow_down, start_parameter=SLOW_DOWN_START)
                await query.answer([], cache_time=SLOW_DOWN_CACHE_SECONDS, is_personal=True,
                                   button=button)
            else:
                await query.answer([_result(item) for item in found.clips],
                                   cache_time=INLINE_CACHE_SECONDS, is_personal=True)
        except TelegramAPIError as exc:  # too late (the person typed on), or a file id gone
            log.info("telegram: inline answer not taken: %s", exc)

    return area


def _result(item: InlineClip) -> InlineQueryResultCachedVideo:
    return InlineQueryResultCachedVideo(
        id=str(item.post_id), video_file_id=item.file_id, title=item.title,
        description=item.description,
    )
