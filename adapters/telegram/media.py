"""User media in: which attachment a message carries, its size check, the download.

An attachment reaches the Desk as a `TelegramFile` (an `Incoming`): the Desk
downloads it when it needs it, and a file over the limit is a typed error it answers."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from core.desk import Desk
from core.errors import LokizError, VideoTooLarge

MB = 1024 * 1024
DOWNLOAD_LIMIT = 20 * MB  # getFile on the public Bot API server
DOWNLOAD_TIMEOUT = 120


@dataclass(frozen=True)
class Attachment:
    """A file in a message: what the bot would download, and how big Telegram says it is."""

    file_id: str
    size: int | None
    suffix: str
    kind: str  # "video" | "photo" | "audio" | "other"

    @property
    def size_mb(self) -> str:
        return f"{(self.size or 0) / MB:.1f}"


def _suffix(name: str | None, mime: str | None, default: str) -> str:
    suffix = Path(name or "").suffix.lower()
    if suffix and len(suffix) <= 6 and suffix[1:].isalnum():
        return suffix
    guessed = mimetypes.guess_extension(mime or "") if mime else None
    return guessed or default


def attachment(message: Message) -> Attachment | None:
    """The media a message carries, classified (video note, animation and video documents are videos)."""
    if message.video is not None:
        v = message.video
        return Attachment(v.file_id, v.file_size, _suffix(v.file_name, v.mime_type, ".mp4"), "video")
    if message.video_note is not None:
        return Attachment(message.video_note.file_id, message.video_note.file_size, ".mp4", "video")
    if message.animation is not None:
        a = message.animation
        return Attachment(a.file_id, a.file_size, _suffix(a.file_name, a.mime_type, ".mp4"), "video")
    if message.photo:
        biggest = message.photo[-1]
        return Attachment(biggest.file_id, biggest.file_size, ".jpg", "photo")
    if message.audio is not None:
        au = message.audio
        return Attachment(au.file_id, au.file_size, _suffix(au.file_name, au.mime_type, ".mp3"), "audio")
    if message.voice is not None:
        return Attachment(message.voice.file_id, message.voice.file_size, ".ogg", "audio")
    if message.document is not None:
        d = message.document
        mime = (d.mime_type or mimetypes.guess_type(d.file_name or "")[0] or "").lower()
        kind = "other"
        if mime.startswith("video/"):
            kind = "video"
        elif mime.startswith("image/"):
            kind = "photo"
        elif mime.startswith("audio/"):
            kind = "audio"
        return Attachment(d.file_id, d.file_size, _suffix(d.file_name, mime, ".bin"), kind)
    return None


class VideoTooBigToFetch(LokizError):
    """Over the Bot API's download limit; params: size_mb, limit_mb."""

    key = "telegram.video_too_large"


class ImageTooBigToFetch(VideoTooBigToFetch):
    key = "telegram.image_too_large"


class Downloads:
    """Fetches user files into the Desk's temp area, within the server's limit
    (20 MB on the public Bot API server; MAX_DOWNLOAD_MB with a local one)."""

    def __init__(self, bot: Bot, desk: Desk, *, local_server: bool, max_download_mb: int = 200) -> None:
        self.bot = bot
        self.desk = desk
        self.local_server = local_server
        cap = max_download_mb * MB
        self.limit = cap if local_server else min(cap, DOWNLOAD_LIMIT)

    @property
    def limit_mb(self) -> int:
        return self.limit // MB

    def too_large(self, item: Attachment) -> bool:
        """Checked before getFile, which would refuse it anyway (and cost a request)."""
        return item.size is not None and item.size > self.limit

    async def fetch(self, item: Attachment) -> Path:
        """The file on disk; a typed "too large" error (answered by the Desk) over the limit."""
        if self.too_large(item):
            raise self._too_big(item)
        path = self.desk.temp_file(item.suffix)
        try:
            if item.size is None:  # ask first: getFile tells the size
                known = await self.bot.get_file(item.file_id)
                if known.file_size is not None and known.file_size > self.limit:
                    raise self._too_big(item)
            await self.bot.download(item.file_id, destination=path, timeout=DOWNLOAD_TIMEOUT)
            if path.stat().st_size > self.limit:
                raise self._too_big(item)
        except TelegramBadRequest as exc:
            path.unlink(missing_ok=True)
            if "file is too big" not in str(exc).lower():
                raise
            raise self._too_big(item) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _too_big(self, item: Attachment) -> LokizError:
        size_mb = item.size_mb if item.size else f">{self.limit_mb}"
        if item.kind == "photo":
            kind: type[LokizError] = ImageTooBigToFetch
        else:  # the hint explains the public Bot API's 20 MB; a local server has no such cap
            kind = VideoTooLarge if self.local_server else VideoTooBigToFetch
        return kind(f"{item.size} bytes", size_mb=size_mb, limit_mb=self.limit_mb)

    def incoming(self, item: Attachment) -> TelegramFile:
        return TelegramFile(self, item)


@dataclass(frozen=True)
class TelegramFile:
    """A user's file as the Desk receives it (`core.desk.Incoming`)."""

    downloads: Downloads
    item: Attachment

    async def fetch(self) -> Path:
        return await self.downloads.fetch(self.item)
