"""/glitch (alias /remix) as a reply to a shared clip: that clip becomes the template clip."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.handlers.common import fetch_or_explain, lang_of
from adapters.telegram.media import Downloads, attachment
from adapters.telegram.render import Renderer
from core.i18n import t
from core.screens import Screen
from core.studio.replies import ChatContext
from core.studio.studio import Studio

if TYPE_CHECKING:
    from bot.app import Services


def router() -> Router:
    area = Router(name="groups")

    @area.message(Command("glitch", "remix"))
    async def glitch(
        message: Message, command: CommandObject, ctx: ChatContext, studio: Studio,
        renderer: Renderer, downloads: Downloads, services: Services,
    ) -> None:
        replied = message.reply_to_message
        item = attachment(replied) if replied is not None else None
        if item is None or item.kind != "video":
            lang = await lang_of(services, ctx)
            await renderer.send(ctx, Screen(t(lang, "telegram.glitch_usage")), reply_to=ctx.message_id)
            return
        clip = await fetch_or_explain(item, ctx, services, downloads, renderer)
        if clip is None:
            return
        reply = await studio.glitch_with_clip(
            ctx, clip, reply_to=str(message.message_id), start=command.args
        )
        await renderer.render(reply, ctx)

    return area
