"""The studio in chat: videos and photos in, typed times and prompts, everything else a hint."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message

from adapters.telegram.filters import ForTheBot, without_mention
from adapters.telegram.handlers.common import fetch_or_explain, lang_of
from adapters.telegram.media import Downloads, attachment
from adapters.telegram.render import Renderer
from core.i18n import t
from core.screens import Screen
from core.studio.replies import ChatContext
from core.studio.studio import Studio

if TYPE_CHECKING:
    from bot.app import Services

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
    async def media_in(
        message: Message, bot: Bot, ctx: ChatContext, studio: Studio, renderer: Renderer,
        downloads: Downloads, services: Services,
    ) -> None:
        item = attachment(message)
        if item is None or item.kind == "other":
            lang = await lang_of(services, ctx)
            await renderer.send(ctx, Screen(t(lang, "error.not_a_video")), reply_to=ctx.message_id)
            return
        path = await fetch_or_explain(item, ctx, services, downloads, renderer)
        if path is None:
            return
        show_working(bot, message.chat.id)
        if item.kind == "photo":
            reply = await studio.photo(ctx, path)
        else:
            me = await bot.me()
            caption = without_mention(message.caption or "", me.username)
            reply = await studio.video(ctx, path, caption or None)
        await renderer.render(reply, ctx)

    @area.message(F.text, ~F.text.startswith("/"))
    async def text_in(
        message: Message, bot: Bot, ctx: ChatContext, studio: Studio, renderer: Renderer
    ) -> None:
        me = await bot.me()
        text = without_mention(message.text or "", me.username)
        await renderer.render(await studio.text(ctx, text), ctx)

    @area.message(F.chat.type == "private")
    async def anything_else(
        message: Message, ctx: ChatContext, renderer: Renderer, services: Services
    ) -> None:
        lang = await lang_of(services, ctx)
        await renderer.send(ctx, Screen(t(lang, "studio.hint")), reply_to=ctx.message_id)

    return area
