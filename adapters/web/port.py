"""Every call the web studio makes into the core, in one place: what a browser did
goes in as a `ChatContext` and an event; a core `Reply` comes back to render."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from core.i18n import normalize_language
from core.studio.replies import ChatContext, Reply

if TYPE_CHECKING:
    from bot.app import Services

PLATFORM = "web"


class StudioPort:
    def __init__(self, services: Services) -> None:
        self.studio = services.studio
        self.account = services.account
        self.ledger = services.ledger
        self.media_store = services.media
        self.rate_limiter = services.rate_limiter

    def context(self, visitor: str, language: str | None, message_id: str | None = None) -> ChatContext:
        # A browser is a private chat whose id is the visitor's own.
        return ChatContext(PLATFORM, visitor, visitor, "private", language_code=language,
                           message_id=message_id)

    def allow(self, ctx: ChatContext) -> bool:
        """The per-user rate limit every platform shares."""
        return self.rate_limiter.allow(f"{PLATFORM}:{ctx.user_id}")

    def temp_file(self, suffix: str) -> Path:
        """Where an upload is written before the studio takes it."""
        return self.media_store.temp(suffix)

    async def language(self, ctx: ChatContext) -> str:
        """The visitor's language without creating them (for refusals)."""
        user = await self.ledger.users.find(PLATFORM, ctx.user_id)
        if user is not None:
            return self.studio.language_of(user, ctx)
        return normalize_language(ctx.language_code, self.studio.default_language)

    async def welcome(self, ctx: ChatContext) -> Reply:
        return await self.studio.start(ctx)

    async def media(self, ctx: ChatContext, path: Path, caption: str, *, photo: bool) -> Reply:
        if photo:
            return await self.studio.photo(ctx, path)
        return await self.studio.video(ctx, path, caption or None)

    async def text(self, ctx: ChatContext, text: str, session_id: str | None) -> Reply:
        if session_id:  # the answer to a form the studio asked for
            return await self.studio.typed(ctx, session_id, text)
        return await self.studio.text(ctx, text)

    async def press(self, ctx: ChatContext, data: str) -> Reply:
        return await self.studio.press(ctx, data)

    async def account_answer(self, ctx: ChatContext, what: str, code: str) -> Reply:
        if what == "jobs":
            return await self.account.jobs_list(ctx)
        if what == "lang":
            return await self.studio.set_language(ctx, code)
        if what == "help":
            return await self.account.help(ctx)
        return await self.account.balance(ctx)

    async def bind(self, session_id: str, message_id: str) -> None:
        await self.studio.bind_message(session_id, message_id)
