"""What the core asks an adapter to do in answer to one update.

The core decides; the adapter renders each instruction on its platform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.notify import OutputMedia
from core.screens import Button, Screen
from core.sessions import Awaiting


@dataclass(frozen=True)
class ChatContext:
    """Who did something, where. Adapters build it from a platform update."""

    platform: str  # "telegram" | "discord"
    user_id: str  # the platform's user id
    chat_id: str
    chat_kind: str = "private"  # "private" | "group"
    display_name: str = ""
    username: str | None = None
    language_code: str | None = None
    message_id: str | None = None  # the incoming message, or the message whose button was pressed


@dataclass(frozen=True)
class Send:
    """Send a new message. If `session_id` is set, the adapter reports the new
    message id with `Desk.bind_message` so later presses edit it in place."""

    screen: Screen
    reply_to: str | None = None
    session_id: str | None = None


@dataclass(frozen=True)
class Edit:
    """Edit an existing message in place (caption/text and buttons; media too if
    `new_media`; only the buttons if `buttons_only`, e.g. a 👍 count on a result)."""

    screen: Screen
    message_id: str
    new_media: bool = False
    buttons_only: bool = False


@dataclass(frozen=True)
class Alert:
    """A short notice to the presser only (Telegram callback alert, Discord ephemeral)."""

    text: str


@dataclass(frozen=True)
class AskText:
    """Ask the user to type something for a session. Platforms with forms (Discord)
    open a modal and answer with `FormAnswered`; others show `screen` as an
    edit of `message_id` (or a new message) and route the next text message."""

    session_id: str
    title: str
    label: str
    placeholder: str
    max_length: int
    screen: Screen
    message_id: str | None = None


@dataclass(frozen=True)
class SendMedia:
    """Send a finished file (e.g. a clip with music added)."""

    media: OutputMedia
    screen: Screen
    reply_to: str | None = None


@dataclass(frozen=True)
class FeedClip:
    """One post on a feed page: its clip (a platform file id to reuse, else the stored
    file to upload; both may be None once the clip is gone), a caption, 👍 n and 🌀 Remix."""

    post_id: int
    path: Path | None
    file_id: str | None
    caption: str
    buttons: tuple[tuple[Button, ...], ...] = ()


@dataclass(frozen=True)
class SendFeed:
    """A page of the chat's feed: a header (`screen`: its text and the ◀ ▶ buttons) and
    its clips. Telegram sends the header then each clip as a video (by file id, uploaded
    again from `path` if the id is missing or expired); Discord sends one message with
    the clips as attachments. `message_id` is the header shown before when ◀ ▶ turns the
    page (replace it, and the clips under it where the platform can)."""

    screen: Screen
    clips: tuple[FeedClip, ...] = ()
    message_id: str | None = None


Out = Send | Edit | Alert | AskText | SendMedia | SendFeed


@dataclass
class Reply:
    """The core's answer to one event: what to show, in which language, and what the
    studio now waits for (each adapter has its own hint text for each `Awaiting`)."""

    outs: list[Out] = field(default_factory=list)
    lang: str = ""  # the Desk sets it: the caller's language
    awaiting: Awaiting = Awaiting.NOTHING

    def add(self, out: Out) -> Reply:
        self.outs.append(out)
        return self

    @property
    def alerts(self) -> list[Alert]:
        return [out for out in self.outs if isinstance(out, Alert)]
