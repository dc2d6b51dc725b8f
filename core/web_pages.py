"""The web studio's pages, stored (SPEC §11). A browser's page: its messages (with a revision each page asks "since")
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


class WebPages:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._changed: dict[str, asyncio.Event] = {}

    # --- messages ------------------------------------------------------------------
    async def add(self, chat: str, body: dict[str, Any], *, mine: bool = False,
                  once: str | None = None) -> str:
        """A new message; with `once` (a delivery key) a repeat returns the first one."""
        async with self.db.transaction() as uow:
            message_id = await uow.web_pages.add(chat, json.dumps(body), mine=mine, delivery=once,
                                                 now=time.time())
        self._wake(chat)
        return str(message_id)

    async def change(self, chat: str, message_id: str, **fields: Any) -> bool:
        """Rewrite parts of one of the page's messages (an edit in place); False if not its."""
        async with self.db.transaction() as uow:
            old = await uow.web_pages.body(chat, _int(message_id))
            changed = old is not None and await uow.web_pages.rewrite(
                chat, _int(message_id), json.dumps({**json.loads(old), **fields}))
        if changed:
            self._wake(chat)
        return changed

    async def get(self, chat: str, message_id: str) -> dict[str, Any] | None:
        async with self.db.read() as uow:
            body = await uow.web_pages.body(chat, _int(message_id))
        return None if body is None else dict(json.loads(body))

    async def since(self, chat: str, rev: int) -> list[dict[str, Any]]:
        """Messages written after revision `rev` (the latest RECENT ones for a fresh page)."""
        async with self.db.read() as uow:
            rows = await uow.web_pages.since(chat, rev, RECENT if rev == 0 else 500)
        return [{**json.loads(r["body"]), "id": str(r["id"]), "rev": r["rev"], "mine": bool(r["mine"])}
                for r in reversed(rows)]

    async def balance(self, chat: str) -> int:
        """The browser's balance, for the page's header (0 before its first visit)."""
        user = await self.db.find_user("web", chat)
        return int(user["balance"]) if user is not None else 0

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
    async def share(self, chat: str, path: Path, media_id: str) -> str:
        """Show `path` on this page under the opaque `media_id`."""
        async with self.db.transaction() as uow:
            await uow.web_pages.share(media_id, chat, str(path), time.time())
        return media_id

    async def media_path(self, chat: str, media_id: str) -> Path | None:
        async with self.db.read() as uow:
            path = await uow.web_pages.media_path(chat, media_id)
        return Path(path) if path is not None else None

    async def forget(self, before: float) -> None:
        """Drop pages and media links older than `before` (their media is cleaned by then)."""
        async with self.db.transaction() as uow:
            await uow.web_pages.forget_before(before)


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1
