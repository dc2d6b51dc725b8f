"""/glitch (alias /remix) as a reply to a shared clip: that clip becomes the template clip."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.media import Downloads, attachment
from adapters.telegram.render import Renderer
from core.desk import ChatContext, ClipShared, Desk, Event, Unusable


def router() -> Router:
    area = Router(name="groups")

    @area.message(Command("glitch", "remix"))
    async def glitch(message: Message, command: CommandObject, ctx: ChatContext, desk: Desk,
                     renderer: Renderer, downloads: Downloads) -> None:
        replied = message.reply_to_message
        item = attachment(replied) if replied is not None else None
        event: Event = Unusable(ctx, "telegram.glitch_usage")
        if item is not None and item.kind == "video":
            event = ClipShared(ctx, downloads.incoming(item), str(message.message_id), command.args,
                               shared_message_id=str(replied.message_id) if replied else None)
        await desk.serve(event, renderer.outlet(ctx))

    return area
