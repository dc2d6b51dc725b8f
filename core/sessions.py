"""Studio sessions as stored, with optimistic versioning.

A session is read, changed in memory and saved only if nobody saved it in
between (`version`); a double press or a second instance loses the race and is
told so instead of charging twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from core.ids import short_id
from core.storage import Database

SESSION_TTL = 24 * 3600
def new_session_id() -> str:
    return short_id(8)


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    platform: str
    chat_id: str
    chat_kind: str
    step: str
    data: dict[str, Any] = field(default_factory=dict)
    awaiting: str | None = None
    message_id: str | None = None
    version: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float = 0.0

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def evolve(self, *, step: str | None = None, awaiting: Any = ..., message_id: Any = ...,
               **data: Any) -> Session:
        """A copy with a new step and/or data keys (None deletes a key)."""
        merged = {**self.data, **data}
        merged = {k: v for k, v in merged.items() if v is not None}
        changes: dict[str, Any] = {"data": merged}
        if step is not None:
            changes["step"] = step
        if awaiting is not ...:
            changes["awaiting"] = awaiting
        if message_id is not ...:
            changes["message_id"] = message_id
        return replace(self, **changes)

    @property
    def expired(self) -> bool:
        return time.time() > self.expires_at

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Session:
        values = {k: row[k] for k in cls.__dataclass_fields__}
        values["data"] = json.loads(row["data"])
        return cls(**values)


def _row(session: Session) -> dict[str, Any]:
    return {**{k: getattr(session, k) for k in Session.__dataclass_fields__},
            "data": json.dumps(session.data)}


class StaleSession(Exception):
    """Someone saved the session first (a double press, another instance)."""


class SessionStore:
    def __init__(self, db: Database, ttl: float = SESSION_TTL) -> None:
        self.db = db
        self.ttl = ttl

    async def create(
        self, *, user_id: int, platform: str, chat_id: str, chat_kind: str, step: str,
        data: dict[str, Any], awaiting: str | None = None, message_id: str | None = None,
    ) -> Session:
        now = time.time()
        session = Session(
            id=new_session_id(), user_id=user_id, platform=platform, chat_id=str(chat_id),
            chat_kind=chat_kind, step=step, data=data, awaiting=awaiting, message_id=message_id,
            version=0, created_at=now, updated_at=now, expires_at=now + self.ttl,
        )
        async with self.db.transaction() as tx:
            await tx.sessions.insert(_row(session))
        return session

    async def get(self, session_id: str) -> Session | None:
        async with self.db.read() as tx:
            row = await tx.sessions.get(session_id)
        return None if row is None else Session.from_row(row)

    async def save(self, session: Session) -> Session:
        """Store `session` if its version is still current; raise StaleSession otherwise."""
        now = time.time()
        saved = replace(session, version=session.version + 1, updated_at=now, expires_at=now + self.ttl)
        async with self.db.transaction() as tx:
            changed = await tx.sessions.save(_row(saved), version=session.version)
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
        return None if row is None else Session.from_row(row)

    async def latest_with(self, user_id: int, key: str) -> Session | None:
        """The user's newest live session (any chat) whose data has `key` (e.g. a frame)."""
        async with self.db.read() as tx:
            row = await tx.sessions.latest_with(user_id, key, time.time())
        return None if row is None else Session.from_row(row)
