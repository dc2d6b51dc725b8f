"""What several handlers share: fetching a user's file, or saying why not."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiogram.exceptions import TelegramBadRequest

from adapters.telegram.media import Attachment, Downloads, DownloadTooLarge
from adapters.telegram.middlewares import language_for
from adapters.telegram.render import Renderer
from core.i18n import t
from core.screens import Screen
from core.studio.replies import ChatContext

if TYPE_CHECKING:
    from bot.app import Services


async def lang_of(services: Services, ctx: ChatContext) -> str:
    return await language_for(services.ledger.users, services.studio, ctx)


async def fetch_or_explain(
    item: Attachment, ctx: ChatContext, services: Services, downloads: Downloads, renderer: Renderer
) -> Path | None:
    """The file on disk, or None after telling the user it is over the download limit."""
    if not downloads.too_large(item):
        try:
            return await downloads.fetch(item)
        except DownloadTooLarge:
            pass
        except TelegramBadRequest as exc:
            if "file is too big" not in str(exc).lower():
                raise
    lang = await lang_of(services, ctx)
    size_mb = item.size_mb if item.size else f">{downloads.limit_mb}"
    if item.kind == "photo":
        text = t(lang, "telegram.image_too_large", size_mb=size_mb, limit_mb=downloads.limit_mb)
    else:
        lines = [t(lang, "error.video_too_large", size_mb=size_mb, limit_mb=downloads.limit_mb)]
        if not downloads.local_server:  # the hint explains the public Bot API's 20 MB
            lines.append(t(lang, "telegram.too_large_hint", limit_mb=downloads.limit_mb))
        text = "\n".join(lines)
    await renderer.send(ctx, Screen(text), reply_to=ctx.message_id)
    return None
