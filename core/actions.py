"""What a button does, as typed data: one small dataclass per kind of press.

Each action packs into the wire string the platforms carry (Telegram
`callback_data` ≤ 64 bytes, a Discord `custom_id`): `lz:<name>:<field>:<field>…`,
the format buttons have always had, so buttons sent before an upgrade still work.
`unpack` turns a press back into its dataclass, or None for anything forged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

# The shortest platform limit: Telegram callback_data is at most 64 bytes.
MAX_ACTION_BYTES = 64
PREFIX = "lz"
_ARG = re.compile(r"^[A-Za-z0-9_.\-+]{0,24}$")
_NAME = re.compile(r"^[a-z][a-z_.]{0,23}$")
# A tenth of a second as an int stays within ten days either way (a forged huge number is refused).
_MAX_INT = 10 * 24 * 3600
# Row ids (a post's) are counted, not measured: any id a database could hand out.
_MAX_ID = 2**63 - 1

A = TypeVar("A", bound="Action")
_KINDS: dict[str, type[Action]] = {}


@dataclass(frozen=True)
class Action:
    """A press's meaning. Subclasses name themselves with `wire` and list their fields."""

    wire: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.wire:
            _KINDS[cls.wire] = cls

    def pack(self) -> str:
        """`lz:<wire>:<fields…>`; ValueError if it would not fit a platform's limit."""
        args = tuple(str(getattr(self, f.name)) for f in dataclasses.fields(self))
        if not _NAME.match(self.wire) or not all(_ARG.match(arg) for arg in args):
            raise ValueError(f"bad action {self!r}")
        data = ":".join((PREFIX, self.wire, *args))
        if len(data.encode()) > MAX_ACTION_BYTES:
            raise ValueError(f"action data too long: {data!r}")
        return data

    @classmethod
    def unpack(cls: type[A], data: str | None) -> A | None:
        """The action in `data` if it is one of `cls` (any action for `Action`), else None."""
        action = unpack(data)
        return action if isinstance(action, cls) else None


def unpack(data: str | None) -> Action | None:
    """The typed action a press carries, or None for anything forged or malformed."""
    if not data or len(data.encode()) > MAX_ACTION_BYTES:
        return None
    parts = data.split(":")
    if len(parts) < 2 or parts[0] != PREFIX or parts[1] not in _KINDS:
        return None
    kind, args = _KINDS[parts[1]], parts[2:]
    fields = dataclasses.fields(kind)
    required = sum(1 for f in fields if f.default is dataclasses.MISSING)
    # Trailing fields with defaults may be absent: buttons sent before they existed still work.
    if not required <= len(args) <= len(fields) or not all(_ARG.match(arg) for arg in args):
        return None
    values: list[Any] = []
    for field, arg in zip(fields, args, strict=False):
        if field.type in (int, "int"):
            try:
                number = int(arg)
            except ValueError:
                return None
            if abs(number) > (_MAX_ID if field.name in _ID_FIELDS else _MAX_INT):
                return None
            values.append(number)
        else:
            values.append(arg)
    return kind(*values)


# --- the studio (one session each) ---------------------------------------------------
@dataclass(frozen=True)
class SessionAction(Action):
    session: str


@dataclass(frozen=True)
class SeekFrame(SessionAction):
    """A contact-sheet tile: the frame at `tenths` of a second."""

    wire: ClassVar[str] = "st.at"
    tenths: int


@dataclass(frozen=True)
class Scrub(SessionAction):
    """Nudge the frame by `tenths` of a second."""

    wire: ClassVar[str] = "st.scrub"
    tenths: int


@dataclass(frozen=True)
class SharpestNearby(SessionAction):
    """✨ Move to the least blurred frame within ±0.5 s."""

    wire: ClassVar[str] = "st.sharp"


@dataclass(frozen=True)
class OpenTemplates(SessionAction):
    wire: ClassVar[str] = "st.tpl"


@dataclass(frozen=True)
class PickTemplate(SessionAction):
    wire: ClassVar[str] = "st.pick"
    template: str


@dataclass(frozen=True)
class CustomPrompt(SessionAction):
    """Type a prompt (opens a form where the platform has them)."""

    wire: ClassVar[str] = "st.custom"


@dataclass(frozen=True)
class SetOption(SessionAction):
    """A template option's choice, by index: values like "16:9" hold the separator."""

    wire: ClassVar[str] = "st.opt"
    name: str
    index: int


@dataclass(frozen=True)
class Next(SessionAction):
    wire: ClassVar[str] = "st.next"


@dataclass(frozen=True)
class Back(SessionAction):
    wire: ClassVar[str] = "st.back"


@dataclass(frozen=True)
class OpenGlitch(SessionAction):
    wire: ClassVar[str] = "st.glitch"


@dataclass(frozen=True)
class UseLastFrame(SessionAction):
    wire: ClassVar[str] = "st.lastframe"


@dataclass(frozen=True)
class PickMode(SessionAction):
    wire: ClassVar[str] = "st.mode"
    mode: str  # "animate" | "replace"


@dataclass(frozen=True)
class OpenMusic(SessionAction):
    wire: ClassVar[str] = "st.music"


@dataclass(frozen=True)
class PickStyle(SessionAction):
    wire: ClassVar[str] = "st.style"
    style: str


@dataclass(frozen=True)
class PickMood(SessionAction):
    wire: ClassVar[str] = "st.mood"
    mood: str


@dataclass(frozen=True)
class Submit(SessionAction):
    wire: ClassVar[str] = "st.go"


@dataclass(frozen=True)
class Cancel(SessionAction):
    wire: ClassVar[str] = "st.cancel"


# --- results (one job each) ------------------------------------------------------------
@dataclass(frozen=True)
class JobAction(Action):
    job: str


@dataclass(frozen=True)
class Like(JobAction):
    wire: ClassVar[str] = "job.like"


@dataclass(frozen=True)
class Remix(JobAction):
    wire: ClassVar[str] = "job.remix"


@dataclass(frozen=True)
class CancelJob(JobAction):
    wire: ClassVar[str] = "job.cancel"


@dataclass(frozen=True)
class Again(JobAction):
    """Run the result's request again; `version` counts the Again presses the buttons had
    taken when shown (a press of an older version is a double press)."""

    wire: ClassVar[str] = "job.again"
    version: int = 0


@dataclass(frozen=True)
class AddMusic(JobAction):
    wire: ClassVar[str] = "job.music"


@dataclass(frozen=True)
class AddToClip(JobAction):
    wire: ClassVar[str] = "job.mux"


@dataclass(frozen=True)
class DeleteClip(JobAction):
    """🗑 under a result: take its post down (the owner, or an admin of the chat)."""

    wire: ClassVar[str] = "job.delete"


# --- account ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChooseLanguage(Action):
    wire: ClassVar[str] = "acct.lang"
    code: str


# --- social (posts and the chat's feed) ----------------------------------------------------
@dataclass(frozen=True)
class PostAction(Action):
    post: int


_ID_FIELDS = frozenset({"post"})


@dataclass(frozen=True)
class LikePost(PostAction):
    wire: ClassVar[str] = "post.like"


@dataclass(frozen=True)
class RemixPost(PostAction):
    wire: ClassVar[str] = "post.remix"


@dataclass(frozen=True)
class DeletePost(PostAction):
    wire: ClassVar[str] = "post.delete"


@dataclass(frozen=True)
class TurnFeedPage(Action):
    wire: ClassVar[str] = "feed.page"
    page: int
