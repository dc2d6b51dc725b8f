"""What every part of the studio works with: the stores, the engine, the catalogues,
the limits, and the few helpers all parts share (locks, ownership, edit-or-send)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from core.catalogue import ModelSpec, TemplateCatalogue
from core.credits import CreditLedger
from core.engine import JobEngine
from core.errors import LokizError
from core.i18n import t
from core.jobs import JobStore
from core.media_store import MediaStore
from core.screens import Screen
from core.sessions import Session, SessionStore
from core.studio.replies import Alert, ChatContext, Edit, Reply, Send
from core.users import User


@dataclass(frozen=True)
class StudioLimits:
    max_video_seconds: float = 600
    glitch_max_seconds: float = 10
    preview_upload_bytes: int = 10 * 1024 * 1024


@dataclass
class Workshop:
    ledger: CreditLedger
    sessions: SessionStore
    jobs: JobStore
    engine: JobEngine
    models: dict[str, ModelSpec]
    templates: TemplateCatalogue
    media: MediaStore
    limits: StudioLimits
    music_is_bark: bool = True
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def lock(self, session_id: str) -> asyncio.Lock:
        """One press at a time per session in this process (other instances lose on version)."""
        if len(self._locks) > 10_000:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def own_session(self, user: User, lang: str, session_id: str) -> Session | Reply:
        """The caller's live session, or the alert that says why not."""
        session = await self.sessions.get(session_id)
        if session is None or session.expired or not media_present(session):
            return Reply([Alert(t(lang, "error.session_expired"))])
        if session.user_id != user.id:
            return Reply([Alert(t(lang, "error.not_your_session"))])
        return session

    def prices(self) -> dict[str, int]:
        return {action: spec.price for action, spec in self.models.items()}


def edit(ctx: ChatContext, session: Session, screen: Screen) -> Reply:
    """Change the session's studio message in place (or send it, if it has none yet)."""
    target = session.message_id or ctx.message_id
    if target is None:
        return Reply([Send(screen, None, session_id=session.id)])
    return Reply([Edit(screen, target)])


def send(ctx: ChatContext, session: Session, screen: Screen) -> Reply:
    """A new studio message for the session, replying to what the user sent."""
    return Reply([Send(screen, ctx.message_id, session_id=session.id)])


def error(ctx: ChatContext, lang: str, exc: LokizError) -> Reply:
    return Reply([Send(Screen(t(lang, exc.key, **exc.params)), ctx.message_id)])


def refuse(lang: str, key: str = "error.unknown_button") -> Reply:
    return Reply([Alert(t(lang, key))])


def media_present(session: Session) -> bool:
    """Whether the files a session works on are still there (media is cleaned after its TTL)."""
    data = session.data
    return all(Path(path).exists() for path in (data.video, data.clip, data.image) if path)
