"""Fetching users' attachments from Discord's CDN into the media store, size first."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from core.desk import Desk
from core.errors import LokizError, VideoTooLarge

log = logging.getLogger(__name__)

# Discord lets boosted servers and Nitro users upload up to 500 MB; we take videos up to this.
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".m4v", ".avi", ".gif")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".heic")


class DownloadFailed(LokizError):
    """The CDN did not give us the file (expired URL, network trouble)."""

    key = "discord.download_failed"


class Attached(Protocol):
    """What we read of a file a user attached (a `discord.Attachment`, or one from a form)."""

    @property
    def url(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def content_type(self) -> str | None: ...


@dataclass(frozen=True)
class FormFile:
    """A file uploaded through a form, as the interaction's resolved data describes it."""

    url: str
    filename: str
    size: int
    content_type: str | None = None


def is_video(attachment: Attached) -> bool:
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    return kind.startswith("video/") or Path(attachment.filename).suffix.lower() in VIDEO_SUFFIXES


def is_image(attachment: Attached) -> bool:
    kind = (attachment.content_type or "").split(";")[0].strip().lower()
    if kind.startswith("image/"):
        return kind != "image/gif"  # a GIF is a clip here
    return Path(attachment.filename).suffix.lower() in IMAGE_SUFFIXES


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".rstrip("0").rstrip(".")


class Downloader:
    def __init__(self, desk: Desk, limit: int = MAX_DOWNLOAD_BYTES) -> None:
        self.desk = desk
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=600, sock_connect=15, sock_read=60)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, attachment: Attached, default_suffix: str = ".mp4") -> Path:
        """Download to a fresh temp path; VideoTooLarge before a byte is fetched if it is too big."""
        if attachment.size > self.limit:
            raise VideoTooLarge(f"{attachment.size} bytes", size_mb=_mb(attachment.size),
                                limit_mb=_mb(self.limit))
        await self.open()
        assert self._session is not None
        suffix = Path(attachment.filename).suffix.lower()[:8] or default_suffix
        path = self.desk.temp_file(suffix)
        try:
            async with self._session.get(attachment.url) as response:
                if response.status != 200:
                    raise DownloadFailed(f"CDN answered {response.status}")
                handle = await asyncio.to_thread(path.open, "wb")
                try:
                    received = 0
                    async for chunk in response.content.iter_chunked(1 << 18):
                        received += len(chunk)
                        if received > self.limit:
                            raise VideoTooLarge(f"{received} bytes", size_mb=_mb(received),
                                                limit_mb=_mb(self.limit))
                        await asyncio.to_thread(handle.write, chunk)
                finally:
                    await asyncio.to_thread(handle.close)
        except (aiohttp.ClientError, TimeoutError) as exc:
            path.unlink(missing_ok=True)
            raise DownloadFailed(str(exc)) from exc
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        log.info("downloaded attachment %s (%d bytes)", attachment.filename, attachment.size)
        return path


@dataclass(frozen=True)
class DiscordFile:
    """An attachment as the Desk receives it (`core.desk.Incoming`): fetched when needed."""

    downloader: Downloader
    attachment: Attached
    default_suffix: str = ".mp4"

    async def fetch(self) -> Path:
        return await self.downloader.fetch(self.attachment, self.default_suffix)
