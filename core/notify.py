"""The notifier port: how the engine talks back to a chat.

Each adapter implements `Notifier`; the engine decides what to say (screens)
and when (throttled), the adapter only renders it on its platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.jobs import Job
from core.screens import Screen


class RecipientGone(Exception):
    """The chat can no longer be written to (bot blocked, chat deleted): do not retry."""


class NotDelivered(Exception):
    """A send that certainly did not reach the chat (refused before the upload): safe to retry."""


class MaybeDelivered(Exception):
    """A send whose answer was lost (timeout, reset, 5xx after the body was sent): it may have arrived."""


@dataclass(frozen=True)
class OutputMedia:
    """A finished result, ready for the platform (fitted to its upload limit)."""

    path: Path
    kind: str  # "video" | "audio"
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: Path | None = None
    file_id: str | None = None  # the platform already has these bytes


@dataclass(frozen=True)
class Receipt:
    message_id: str | None
    file_id: str | None = None


class Notifier(Protocol):
    platform: str

    def upload_limit(self, job: Job) -> int:
        """The largest file (bytes) this chat accepts from the bot right now."""
        ...

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        """Send the job's status message, or edit it in place; return its message id."""
        ...

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        """Send the result into the job's chat, replying to the request.

        Raises RecipientGone or NotDelivered when the chat certainly did not get it,
        MaybeDelivered when it may have (any other error counts as "may have").
        """
        ...

    async def edit_buttons(self, chat_id: str, message_id: str, screen: Screen) -> None:
        """Replace the buttons of one of the bot's messages in any chat by id (e.g. a
        result whose post was deleted from another chat); a message that is gone stays gone."""
        ...
