"""A page of a channel's feed as ONE Discord message: the clips as attachments.

Not embeds: an embed cannot hold an uploaded video. Each clip is uploaded again
from the post's stored file (a Discord CDN link expires; a message cannot point
at another message's attachment), or, once that file is gone, fetched from its
old CDN link while it still answers. All the page's files travel in one request,
which Discord limits as a whole, so clips share the channel's upload limit and a
clip over its share is fitted to it. Under the clips' captions come the buttons:
👍 n and 🌀 Remix per clip, numbered like the captions (one row per kind, so five
clips and ◀ ▶ fit Discord's five rows), then the page's own ◀ ▶.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.components import MAX_PER_ROW, MAX_ROWS, build_view
from adapters.discord.downloads import FormFile
from core.errors import LokizError
from core.i18n import t
from core.media.fit import fit_video
from core.screens import Button, Screen
from core.studio.replies import FeedClip, SendFeed

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

log = logging.getLogger(__name__)

MAX_CLIPS = 5  # a feed page (the core pages by 5; more would not fit the buttons)
MAX_ATTACHMENTS = 10
REQUEST_OVERHEAD = 64 * 1024  # the JSON payload and the multipart framing around the files
MAX_CONTENT = 2000
RANK = re.compile(r"\s*(\d{1,6})[.)]\s")  # "6. @bob · 👍 3 …"
NO_MENTIONS = discord.AllowedMentions.none()


@dataclass
class FeedMessage:
    """What one feed page sends or edits in: text, buttons and files."""

    content: str
    view: discord.ui.View | None
    files: list[discord.File]
    ephemeral: bool = False
    scratch: list[Path] = field(default_factory=list)  # fitted or fetched copies to remove

    def send_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"content": self.content, "allowed_mentions": NO_MENTIONS,
                                  "files": self.files}
        if self.view is not None:
            kwargs["view"] = self.view
        return kwargs

    def edit_kwargs(self) -> dict[str, Any]:
        """Turning the page replaces the text, the buttons and every attachment."""
        return {"content": self.content, "view": self.view, "attachments": self.files,
                "allowed_mentions": NO_MENTIONS}


def clip_numbers(clips: tuple[FeedClip, ...]) -> list[int]:
    """Each clip's number as its caption shows it (its rank in the feed: "6. @bob · …" on
    page 2), else its place on the page."""
    numbers = []
    for place, clip in enumerate(clips, 1):
        rank = RANK.match(clip.caption)
        numbers.append(int(rank.group(1)) if rank else place)
    return numbers


def numbered(number: int, button: Button) -> Button:
    return replace(button, label=f"#{number} {button.label}")


def feed_buttons(out: SendFeed) -> tuple[tuple[Button, ...], ...]:
    """The clips' buttons by kind (all 👍, then all 🌀), numbered, then the page's rows."""
    clips = out.clips[:MAX_CLIPS]
    per_clip = [[b for row in clip.buttons for b in row] for clip in clips]
    rows: list[tuple[Button, ...]] = []
    for kind in range(max((len(buttons) for buttons in per_clip), default=0)):
        column = [numbered(number, buttons[kind])
                  for number, buttons in zip(clip_numbers(clips), per_clip, strict=True)
                  if kind < len(buttons)]
        rows.extend(tuple(column[i:i + MAX_PER_ROW]) for i in range(0, len(column), MAX_PER_ROW))
    rows.extend(out.screen.buttons)
    if len(rows) > MAX_ROWS:  # never drop the page's ◀ ▶: they come last
        rows = rows[:MAX_ROWS - len(out.screen.buttons)] + list(out.screen.buttons)
    return tuple(rows[:MAX_ROWS])


def upload_budget(limit: int) -> int:
    """What the files of one message may weigh together in a channel with this limit."""
    return max(64 * 1024, limit - limit // 50 - REQUEST_OVERHEAD)


def shares(sizes: list[int], budget: int) -> list[int]:
    """How many bytes each file may take so all fit `budget`: small files keep their size,
    the rest split what is left evenly."""
    allowed = [0] * len(sizes)
    left, remaining = budget, len(sizes)
    for index in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        share = left // remaining
        allowed[index] = min(sizes[index], share)
        left -= allowed[index]
        remaining -= 1
    return allowed


@contextlib.asynccontextmanager
async def feed_message(bot: LokizBot, out: SendFeed, lang: str, limit: int) -> AsyncIterator[FeedMessage]:
    """The page's message, its files ready to upload within `limit` (the channel's upload
    limit); the temporary copies are removed when the block ends."""
    page = FeedMessage("", None, [], ephemeral=out.screen.ephemeral)
    try:
        clips = out.clips[:MAX_CLIPS]
        notes: list[str] = []
        sources: list[tuple[int, FeedClip, Path]] = []
        for number, clip in zip(clip_numbers(clips), clips, strict=True):
            path = await _source(bot, clip, page.scratch)
            if path is None:
                notes.append(t(lang, "discord.feed.clip_gone", number=number))
            else:
                sources.append((number, clip, path))
        sources = sources[:MAX_ATTACHMENTS]
        allowed = shares([path.stat().st_size for _, _, path in sources], upload_budget(limit))
        for (number, clip, path), share in zip(sources, allowed, strict=True):
            fitted = await _fit(bot, path, share, page.scratch)
            if fitted is None:
                notes.append(t(lang, "discord.feed.clip_too_big", number=number))
                continue
            page.files.append(discord.File(fitted, filename=f"{number}-post{clip.post_id}{fitted.suffix or '.mp4'}"))
        lines = [out.screen.text]
        for number, clip in zip(clip_numbers(clips), clips, strict=True):  # numbered like the buttons
            lines.append(clip.caption if RANK.match(clip.caption) else f"{number}. {clip.caption}")
        text = "\n".join(line for line in [*lines, *notes] if line)
        page.content = text if len(text) <= MAX_CONTENT else text[:MAX_CONTENT - 1] + "…"
        page.view = build_view(Screen("", feed_buttons(out)))
        yield page
    finally:
        for file in page.files:
            file.close()
        for path in page.scratch:
            path.unlink(missing_ok=True)


async def _source(bot: LokizBot, clip: FeedClip, scratch: list[Path]) -> Path | None:
    """The clip's bytes on disk: the post's stored file, else its CDN link while it works."""
    if clip.path is not None and clip.path.is_file():
        return clip.path
    if not (clip.file_id or "").startswith(("http://", "https://")):
        return None
    link = FormFile(str(clip.file_id), f"post{clip.post_id}.mp4", 0, "video/mp4")
    try:
        path = await bot.downloader.fetch(link)
    except LokizError as exc:
        log.info("feed: post %s has no stored clip and its link is gone (%s)", clip.post_id, exc)
        return None
    scratch.append(path)
    return path


async def _fit(bot: LokizBot, path: Path, share: int, scratch: list[Path]) -> Path | None:
    """The clip itself when it fits its share of the upload, else a copy fitted to it."""
    if path.stat().st_size <= share:
        return path
    target = bot.desk.temp_file(".mp4")
    try:
        fitted = await fit_video(path, share, target)
    except LokizError as exc:
        log.warning("feed: %s does not fit into %d bytes (%s)", path.name, share, exc)
        target.unlink(missing_ok=True)
        return None
    scratch.extend((fitted.path, fitted.thumbnail))
    return fitted.path
