"""Sending finished media: a playable video (or audio), re-sent by file id when Telegram has it."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import FSInputFile, InlineKeyboardMarkup, Message, ReplyParameters

from adapters.telegram.calls import bad_file_id, with_retry
from core.desk import FileIds
from core.notify import OutputMedia

log = logging.getLogger(__name__)
PLATFORM = "telegram"


def reply_parameters(message_id: str | None) -> ReplyParameters | None:
    """Reply to `message_id` if it still exists; send anyway if it was deleted."""
    if not message_id or not str(message_id).isdigit():
        return None
    return ReplyParameters(message_id=int(message_id), allow_sending_without_reply=True)


def file_id_of(message: Message) -> str | None:
    for media in (message.video, message.animation, message.audio, message.voice, message.document):
        if media is not None:
            return media.file_id
    return None


class MediaSender:
    def __init__(self, bot: Bot, files: FileIds) -> None:
        self.bot = bot
        self.files = files

    async def send(
        self,
        chat_id: int,
        media: OutputMedia,
        *,
        text: dict[str, Any],
        markup: InlineKeyboardMarkup | None,
        reply_to: str | None,
    ) -> Message:
        """Send `media` with `text` (caption kwargs); upload only bytes Telegram has not seen."""
        known = media.file_id or await self.files.file_id(PLATFORM, media.path)
        if known is not None:
            try:
                return await self._send(chat_id, media, known, text, markup, reply_to)
            except TelegramBadRequest as exc:
                if not bad_file_id(exc):
                    raise
                log.info("stored file id no longer valid; uploading again")
        message = await self._send(chat_id, media, None, text, markup, reply_to)
        uploaded = file_id_of(message)
        if uploaded is not None:
            await self.files.remember(PLATFORM, media.path, uploaded)
        return message

    async def _send(
        self,
        chat_id: int,
        media: OutputMedia,
        file_id: str | None,
        text: dict[str, Any],
        markup: InlineKeyboardMarkup | None,
        reply_to: str | None,
    ) -> Message:
        def source() -> str | FSInputFile:
            return file_id if file_id is not None else FSInputFile(media.path)

        common: dict[str, Any] = {
            "chat_id": chat_id, "reply_markup": markup,
            "reply_parameters": reply_parameters(reply_to), **text,
        }
        if media.duration is not None:
            common["duration"] = max(1, round(media.duration))
        if media.kind == "audio":
            return await with_retry(
                lambda: self.bot.send_audio(audio=source(), **common),
                idempotent=False, retry_server_errors=False,
            )
        extra: dict[str, Any] = {"supports_streaming": True}
        if media.width and media.height:
            extra.update(width=media.width, height=media.height)

        def thumbnail() -> FSInputFile | None:
            if file_id is None and media.thumbnail is not None and media.thumbnail.is_file():
                return FSInputFile(media.thumbnail)
            return None

        return await with_retry(
            lambda: self.bot.send_video(video=source(), thumbnail=thumbnail(), **common, **extra),
            idempotent=False, retry_server_errors=False,  # a 5xx after the upload may have posted it
        )
