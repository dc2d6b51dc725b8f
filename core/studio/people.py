"""Who is asking, and in which language: the one write path (first contact creates the
user with starter credits) and the read-only language look-up the adapters' hints use."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from core.actions import ChooseLanguage
from core.credits import CreditLedger
from core.i18n import normalize_language, t
from core.media.slots import work_owner
from core.screens import Button, Screen
from core.studio.replies import ChatContext, Reply, Send
from core.users import User

LANGUAGES = (("en", "English"), ("ko", "한국어"))


@dataclass(frozen=True)
class Caller:
    """The user behind an event, settled once per event by the Desk."""

    user: User
    lang: str
    first: bool  # this is their first contact


class People:
    def __init__(self, ledger: CreditLedger, default_language: str = "en") -> None:
        self.ledger = ledger
        self.default_language = default_language

    async def resolve(self, ctx: ChatContext) -> Caller:
        """The user behind `ctx` (created with starter credits on first contact) and their language."""
        user, first = await self.ledger.ensure_user(
            ctx.platform, ctx.user_id, display_name=ctx.display_name,
            username=ctx.username, platform_language=ctx.language_code,
        )
        work_owner.set(user.ref)  # this update's media work queues fairly, as this user's
        return Caller(user, self.language_of(user, ctx), first)

    def language_of(self, user: User, ctx: ChatContext | None = None) -> str:
        if user.language:
            return user.language
        code = (ctx.language_code if ctx else None) or user.platform_language
        return normalize_language(code, self.default_language)

    async def language(self, platform: str, user_id: str, language_code: str | None = None) -> str:
        """A user's language with a read only: no user is created for it, and it never fails."""
        with contextlib.suppress(Exception):
            user = await self.ledger.users.find(platform, user_id)
            if user is not None and user.language:
                return user.language
            if user is not None and not language_code:
                language_code = user.platform_language
        return normalize_language(language_code, self.default_language)

    async def set_language(self, ctx: ChatContext, caller: Caller, code: str) -> Reply:
        """`/lang CODE`, or the choice buttons without a valid code."""
        if code not in dict(LANGUAGES):
            buttons = (tuple(Button(name, ChooseLanguage(lang)) for lang, name in LANGUAGES),)
            screen = Screen(t(caller.lang, "account.choose_language"), buttons, ephemeral=True)
            return Reply([Send(screen, ctx.message_id)])
        await self.ledger.users.set_language(caller.user.id, code)
        return Reply([Send(Screen(t(code, "account.language_set"), ephemeral=True), ctx.message_id)], lang=code)
