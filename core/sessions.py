"""Studio sessions as stored, with optimistic versioning.

A session is read, changed in memory and saved only if nobody saved it in
between (`version`); a double press or a second instance loses the race and is
told so instead of charging twice. Its state is a typed `SessionData`, stored as
the same JSON object as always (absent keys are None), so no migration is needed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from core.ids import short_id
from core.storage import Database

if TYPE_CHECKING:
    from core.media_store import MediaStore

SESSION_TTL = 24 * 3600
MEDIA_FIELDS = ("video", "frame", "clip", "image", "mux_target")  # files a session works on


def new_session_id() -> str:
    return short_id(8)


class Step(StrEnum):
    """Where a session is in the flow (SPEC §2)."""

    SHEET = "sheet"
    FRAME = "frame"
    TEMPLATES = "templates"
    OPTIONS = "options"
    ASK_PROMPT = "ask_prompt"
    ASK_CLIP = "ask_clip"
    ASK_IMAGE = "ask_image"
    MODES = "modes"
    MUSIC = "music"
    CONFIRM = "confirm"
    SUBMITTED = "submitted"
    CLOSED = "closed"


class Awaiting(StrEnum):
    """What the studio waits for the user to send; each adapter has its own hint for each."""

    NOTHING = ""
    TIME = "time"
    CLIP = "clip"
    IMAGE = "image"
    PROMPT = "prompt"
    MUSIC_PROMPT = "music_prompt"

    @property
    def upload(self) -> bool:
        """A file is awaited (an image or a clip)."""
        return self in (Awaiting.CLIP, Awaiting.IMAGE)


@dataclass(frozen=True)
class SessionData:
    """What a session has gathered so far. Paths are strings, as stored."""

    video: str | None = None  # the source video (content-addressed in the media store)
    duration: float | None = None  # of the source video
    source_message_id: str | None = None  # the message the session began with (results reply to it)
    at: float | None = None  # the chosen moment
    frame: str | None = None  # the captured frame at `at`
    action: str | None = None  # template | glitch_animate | glitch_replace | music
    template: str | None = None
    prompt: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    clip: str | None = None  # the glitch template clip, trimmed
    clip_duration: float | None = None
    image: str | None = None  # the user's image for a glitch
    mux_target: str | None = None  # music made for this clip
    last_job: str | None = None

    def to_json(self) -> str:
        values = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not values.get("options"):
            values.pop("options", None)
        return json.dumps(values)

    @classmethod
    def from_json(cls, raw: str | dict[str, Any]) -> SessionData:
        values = json.loads(raw) if isinstance(raw, str) else dict(raw)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})


_NO_CHANGE: Any = ...


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    platform: str
    chat_id: str
    chat_kind: str
    step: Step
    data: SessionData = field(default_factory=SessionData)
    awaiting: Awaiting = Awaiting.NOTHING
    message_id: str | None = None
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float = 0.0

    def evolve(self, *, step: Step | None = None, awaiting: Awaiting | None = None,
               message_id: Any = _NO_CHANGE, **data: Any) -> Session:
        """A copy with a new step, awaited input and/or data fields (None clears a field)."""
        changes: dict[str, Any] = {"data": replace(self.data, **data)} if data else {}
        if step is not None:
            changes["step"] = step
        if awaiting is not None:
            changes["awaiting"] = awaiting
        if message_id is not _NO_CHANGE:
            changes["message_id"] = message_id
        return replace(self, **changes)

    @property
    def expired(self) -> bool:
        return time.time() > self.expires_at

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Session:
        values = {k: row[k] for k in cls.__dataclass_fields__}
        values["data"] = SessionData.from_json(row["data"])
        values["step"] = Step(row["step"])
        values["awaiting"] = Awaiting(row["awaiting"] or "")
        return cls(**values)


def _row(session: Session) -> dict[str, Any]:
    """The session as its stored row: the same columns and JSON as before it was typed."""
    return {**{k: getattr(session, k) for k in Session.__dataclass_fields__},
            "step": session.step.value, "data": session.data.to_json(),
            "awaiting": session.awaiting.value or None}


class StaleSession(Exception):
    """Someone saved the session first (a double press, another instance)."""


class SessionStore:
    """Sessions as stored. With a shared media store (MEDIA_URL), the files a session works
    on are stored as keys and come back as this instance's paths, fetched when another
    instance made them; in local mode paths are stored as they are."""

    def __init__(self, db: Database, ttl: float = SESSION_TTL, *,
                 media: MediaStore | None = None) -> None:
        self.db = db
        self.ttl = ttl
        self.media = media if media is not None and media.shared.shared else None

    def _stored(self, session: Session) -> dict[str, Any]:
        if self.media is None:
            return _row(session)
        media, data = self.media, session.data
        refs: dict[str, Any] = {name: media.ref(value) for name in MEDIA_FIELDS
                if (value := getattr(data, name)) is not None}
        return _row(replace(session, data=replace(data, **refs)))

    async def _loaded(self, row: dict[str, Any] | None) -> Session | None:
        if row is None:
            return None
        session = Session.from_row(row)
        if self.media is None:
            return session
        data = session.data
        paths: dict[str, Any] = {name: str(await self.media.here(value)) for name in MEDIA_FIELDS
                 if (value := getattr(data, name)) is not None}
        return replace(session, data=replace(data, **paths))

    async def create(
        self, *, user_id: int, platform: str, chat_id: str, chat_kind: str, step: Step,
        data: SessionData, awaiting: Awaiting = Awaiting.NOTHING, message_id: str | None = None,
    ) -> Session:
        now = time.time()
        session = Session(
            id=new_session_id(), user_id=user_id, platform=platform, chat_id=str(chat_id),
            chat_kind=chat_kind, step=step, data=data, awaiting=awaiting, message_id=message_id,
            version=0, created_at=now, updated_at=now, expires_at=now + self.ttl,
        )
        async with self.db.transaction() as tx:
            await tx.sessions.insert(self._stored(session))
        return session

    async def get(self, session_id: str) -> Session | None:
        async with self.db.read() as tx:
            row = await tx.sessions.get(session_id)
        return await self._loaded(row)

    async def save(self, session: Session) -> Session:
        """Store `session` if its version is still current; raise StaleSession otherwise."""
        now = time.time()
        saved = replace(session, version=session.version + 1, updated_at=now, expires_at=now + self.ttl)
        async with self.db.transaction() as tx:
            changed = await tx.sessions.save(self._stored(saved), version=session.version)
        if not changed:
            raise StaleSession(session.id)
        return saved

    async def delete_expired(self, *, now: float | None = None) -> int:
        """Delete sessions past their expiry (a press on one is told it expired either way);
        return how many went."""
        moment = time.time() if now is None else now
        async with self.db.transaction() as tx:
            return await tx.sessions.delete_expired(moment)

    async def latest(
        self, *, user_id: int, platform: str, chat_id: str, awaiting: bool = False
    ) -> Session | None:
        """The user's newest live session in this chat (only one that waits for input, if asked)."""
        async with self.db.read() as tx:
            row = await tx.sessions.latest(
                user_id=user_id, platform=platform, chat_id=str(chat_id), now=time.time(),
                awaiting=awaiting,
            )
        return await self._loaded(row)

    async def latest_with(self, user_id: int, key: str) -> Session | None:
        """The user's newest live session (any chat) whose data has `key` (e.g. a frame)."""
        async with self.db.read() as tx:
            row = await tx.sessions.latest_with(user_id, key, time.time())
        return await self._loaded(row)
