"""Every call the web studio makes into the core, in one place: what a browser did
becomes a Desk event; the Desk's `Reply` comes back to render."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.desk import (
    AccountAsked,
    ChatContext,
    Desk,
    Event,
    FeedAsked,
    FormAnswered,
    LanguageChosen,
    PhotoSent,
    Pressed,
    Reply,
    Started,
    TextTyped,
    VideoSent,
)

PLATFORM = "web"


@dataclass(frozen=True)
class Uploaded:
    """A file the browser already streamed to disk (the Desk's `Incoming`)."""

    path: Path

    async def fetch(self) -> Path:
        return self.path


class StudioPort:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def context(self, visitor: str, language: str | None, message_id: str | None = None) -> ChatContext:
        # A browser is a private chat whose id is the visitor's own.
        return ChatContext(PLATFORM, visitor, visitor, "private", language_code=language,
                           message_id=message_id)

    async def language(self, ctx: ChatContext) -> str:
        """The visitor's language without creating them (for refusals)."""
        return await self.desk.language(PLATFORM, ctx.user_id, ctx.language_code)

    def temp_file(self, suffix: str) -> Path:
        return self.desk.temp_file(suffix)

    async def answer(self, event: Event) -> Reply:
        return await self.desk.answer(event)

    async def welcome(self, ctx: ChatContext) -> Reply:
        return await self.answer(Started(ctx))

    async def media(self, ctx: ChatContext, path: Path, caption: str, *, photo: bool) -> Reply:
        if photo:
            return await self.answer(PhotoSent(ctx, Uploaded(path)))
        return await self.answer(VideoSent(ctx, Uploaded(path), caption or None))

    async def text(self, ctx: ChatContext, text: str, session_id: str | None) -> Reply:
        if session_id:  # the answer to a form the studio asked for
            return await self.answer(FormAnswered(ctx, session_id, text=text))
        return await self.answer(TextTyped(ctx, text))

    async def press(self, ctx: ChatContext, data: str) -> Reply:
        return await self.answer(Pressed(ctx, data))

    async def account_answer(self, ctx: ChatContext, what: str, code: str) -> Reply:
        if what == "lang":
            return await self.answer(LanguageChosen(ctx, code))
        if what == "feed":  # a browser is a chat of its own: its feed is its own clips
            return await self.answer(FeedAsked(ctx))
        return await self.answer(AccountAsked(ctx, what if what in ("jobs", "help") else "balance"))

    async def bind(self, session_id: str, message_id: str) -> None:
        await self.desk.bind_message(session_id, message_id)
