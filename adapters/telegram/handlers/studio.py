"""The studio in chat: videos and photos in, typed times and prompts, everything else a hint."""

from __future__ import annotations

import asyncio
import contextlib

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message

from adapters.telegram.filters import ForTheBot, without_mention
from adapters.telegram.media import Downloads, attachment
from adapters.telegram.render import Renderer
from core.desk import ChatContext, Desk, Event, PhotoSent, TextTyped, Unusable, VideoSent

MEDIA = F.video | F.video_note | F.animation | F.photo | F.document | F.audio | F.voice
_background: set[asyncio.Task[None]] = set()


def show_working(bot: Bot, chat_id: int) -> None:
    """"Sending a photo…" while the frame or contact sheet is made (best effort, not awaited)."""

    async def action() -> None:
        with contextlib.suppress(TelegramAPIError):
            await bot.send_chat_action(chat_id=chat_id, action="upload_photo")

    task = asyncio.create_task(action())
    _background.add(task)
    task.add_done_callback(_background.discard)


def router() -> Router:
    area = Router(name="studio")
    area.message.filter(ForTheBot())

    @area.message(MEDIA)
    async def media_in(message: Message, bot: Bot, ctx: ChatContext, desk: Desk, renderer: Renderer,
                       downloads: Downloads) -> None:
        item = attachment(message)
        event: Event = Unusable(ctx, "error.not_a_video")
        if item is not None and item.kind == "photo":
            event = PhotoSent(ctx, downloads.incoming(item))
        elif item is not None and item.kind != "other":
            caption = without_mention(message.caption or "", (await bot.me()).username)
            event = VideoSent(ctx, downloads.incoming(item), caption or None)
        if not isinstance(event, Unusable):
            show_working(bot, message.chat.id)
        await desk.serve(event, renderer.outlet(ctx))

    @area.message(F.text, ~F.text.startswith("/"))
    async def text_in(message: Message, bot: Bot, ctx: ChatContext, desk: Desk, renderer: Renderer) -> None:
        text = without_mention(message.text or "", (await bot.me()).username)
        await desk.serve(TextTyped(ctx, text), renderer.outlet(ctx))

    @area.message(F.chat.type == "private")
    async def anything_else(message: Message, ctx: ChatContext, desk: Desk, renderer: Renderer) -> None:
        await desk.serve(Unusable(ctx, "studio.hint"), renderer.outlet(ctx))

    return area
