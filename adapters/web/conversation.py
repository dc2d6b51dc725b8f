"""A browser's page, stored: its messages (with a revision each page asks "since")
and the media it may show, by opaque id, to its owner only.

Every write lands in the database first, so a reload, a closed tab or another
instance sees the same page; the in-process wake-up only makes this instance quick.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from core.storage import Database

RECENT = 60  # messages a fresh page shows


class Conversation:
    def __init__(self, db: Database, media_key: Any) -> None:
        self.db = db
        self.media_key = media_key  # (chat, path) -> opaque id
        self._changed: dict[str, asyncio.Event] = {}

    # --- messages ------------------------------------------------------------------
    async def add(self, chat: str, body: dict[str, Any], *, mine: bool = False,
                  once: str | None = None) -> str:
        """A new message; with `once` (a delivery key) a repeat returns the first one."""
        async with self.db.transaction() as tx:
            if once is not None:
                found = await tx.fetchval("SELECT id FROM web_messages WHERE delivery = ?", (once,))
                if found is not None:
                    return str(found)
            message_id = await tx.insert(
                "INSERT INTO web_messages (chat_id, rev, mine, body, delivery, created_at) VALUES"
                " (?, (SELECT COALESCE(MAX(rev), 0) + 1 FROM web_messages WHERE chat_id = ?), ?, ?, ?, ?)",
                (chat, chat, int(mine), json.dumps(body), once, time.time()),
            )
        self._wake(chat)
        return str(message_id)

    async def change(self, chat: str, message_id: str, **fields: Any) -> bool:
        """Rewrite parts of one of the user's messages (an edit in place); False if not theirs."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone("SELECT body FROM web_messages WHERE id = ? AND chat_id = ?",
                                    (_int(message_id), chat))
            if row is None:
                return False
            await tx.execute(
                "UPDATE web_messages SET body = ?, rev = (SELECT MAX(rev) + 1 FROM web_messages"
                " WHERE chat_id = ?) WHERE id = ?",
                (json.dumps({**json.loads(row["body"]), **fields}), chat, _int(message_id)),
            )
        self._wake(chat)
        return True

    async def get(self, chat: str, message_id: str) -> dict[str, Any] | None:
        row = await self.db.lookup("SELECT body FROM web_messages WHERE id = ? AND chat_id = ?",
                                   (_int(message_id), chat))
        return None if row is None else dict(json.loads(row["body"]))

    async def since(self, chat: str, rev: int) -> list[dict[str, Any]]:
        """Messages written after revision `rev` (the latest RECENT ones for a fresh page)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT id, rev, mine, body FROM web_messages WHERE chat_id = ? AND rev > ?"
                " ORDER BY rev DESC LIMIT ?", (chat, rev, RECENT if rev == 0 else 500),
            )
        return [{**json.loads(r["body"]), "id": str(r["id"]), "rev": r["rev"], "mine": bool(r["mine"])}
                for r in reversed(rows)]

    async def balance(self, chat: str) -> int:
        """The browser's balance, for the page's header (0 before its first visit)."""
        row = await self.db.lookup(
            "SELECT balance FROM users WHERE platform = 'web' AND platform_user_id = ?", (chat,))
        return int(row["balance"]) if row is not None else 0

    # --- live ------------------------------------------------------------------------
    def _wake(self, chat: str) -> None:
        event = self._changed.pop(chat, None)
        if event is not None:
            event.set()

    async def wait(self, chat: str, timeout: float) -> None:
        """Until this instance writes to the user's page, or `timeout` (then the caller
        reads the database again: writes from other instances arrive that way)."""
        event = self._changed.setdefault(chat, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    # --- media -----------------------------------------------------------------------
    async def share(self, chat: str, path: Path) -> str:
        """The opaque id under which `path` is shown to this user (the same id each time)."""
        media_id = str(self.media_key(chat, path))
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO web_media (id, chat_id, path, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING", (media_id, chat, str(path), time.time()),
            )
        return media_id

    async def media_path(self, chat: str, media_id: str) -> Path | None:
        row = await self.db.lookup("SELECT path FROM web_media WHERE id = ? AND chat_id = ?",
                                   (media_id, chat))
        return Path(row["path"]) if row is not None else None


    async def forget(self, before: float) -> None:
        """Drop pages and media links older than `before` (their media is cleaned by then)."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM web_messages WHERE created_at < ?", (before,))
            await tx.execute("DELETE FROM web_media WHERE created_at < ?", (before,))


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1
