"""What an adapter can tell the Desk: one small dataclass per thing a user did.

Every event carries its `ChatContext` (who, where, which message). Files travel as
`Incoming`: the Desk fetches them itself, so a download that fails is answered
like any other error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.studio.admin import Target
from core.studio.replies import ChatContext


class Incoming(Protocol):
    """A file the user sent, not downloaded yet."""

    async def fetch(self) -> Path:
        """Download into a fresh temp file (`Desk.temp_file`); LokizError if it cannot be."""
        ...


@dataclass(frozen=True)
class Event:
    ctx: ChatContext


@dataclass(frozen=True)
class Started(Event):
    """`/start`, or a bare hello (a mention with nothing else)."""


@dataclass(frozen=True)
class VideoSent(Event):
    file: Incoming
    caption: str | None = None


@dataclass(frozen=True)
class PhotoSent(Event):
    file: Incoming


@dataclass(frozen=True)
class TextTyped(Event):
    text: str


@dataclass(frozen=True)
class Pressed(Event):
    """A button pressed, or a choice in a select menu; `data` is the packed action as carried."""

    data: str | None


@dataclass(frozen=True)
class FormAnswered(Event):
    """A form for `session_id` was submitted: typed text, or an uploaded file."""

    session_id: str
    text: str | None = None
    file: Incoming | None = None
    is_video: bool = False


@dataclass(frozen=True)
class ClipShared(Event):
    """Someone's clip to remix (Telegram `/glitch` as a reply, Discord "Remix this clip")."""

    clip: Incoming
    reply_to: str | None = None
    start: str | None = None
    # The message that holds the clip, if not `reply_to` (Telegram: the replied message):
    # when it is one of the bot's posts, the remix names it as its source.
    shared_message_id: str | None = None


@dataclass(frozen=True)
class MusicAsked(Event):
    prompt: str | None = None


@dataclass(frozen=True)
class TemplateShortcut(Event):
    """Discord `/template`: a video, a moment, maybe a template, straight to that step."""

    video: Incoming
    at: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class GlitchShortcut(Event):
    """Discord `/glitch`: a clip and/or an image (a photo or a video), maybe the mode."""

    clip: Incoming | None = None
    image: Incoming | None = None
    image_is_video: bool = False
    mode: str | None = None
    at: str | None = None


@dataclass(frozen=True)
class AccountAsked(Event):
    """`/balance`, `/jobs`, `/job ID`, `/help`."""

    what: str  # "balance" | "jobs" | "job" | "help"
    job_id: str = ""


@dataclass(frozen=True)
class LanguageChosen(Event):
    code: str = ""  # empty or unknown: the choice buttons


@dataclass(frozen=True)
class AdminCommand(Event):
    command: str
    args: tuple[str, ...] = ()
    replied: Target | None = None


@dataclass(frozen=True)
class FeedAsked(Event):
    """`/feed`: a page (from 0) of the chat's top posts of the last 7 days."""

    page: int = 0


@dataclass(frozen=True)
class TopAsked(Event):
    """`/top`: the chat's most-liked creators of the last 30 days."""


@dataclass(frozen=True)
class PostAsked(Event):
    """`/post ID`: the post and its chain. `post_id` is the raw text typed (the Desk
    parses it and answers a translated error for anything that is not a post number)."""

    post_id: str


@dataclass(frozen=True)
class PostDeleteAsked(Event):
    """`/delete ID`: take a post out of the feed, the rankings and inline results
    (its owner, or an admin of its chat in that chat). `post_id` is the raw text."""

    post_id: str


@dataclass(frozen=True)
class Unusable(Event):
    """Something the adapter could not use (no video in the replied message, a missing
    argument…): the Desk answers with the catalogue text `key`."""

    key: str
