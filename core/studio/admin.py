"""Admin commands (SPEC §2 item 11): grant, revoke, credits, stats.

Only `ADMIN_IDS` may use them; every attempt is logged, refusals included.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from core.credits import CreditLedger
from core.errors import InsufficientCredits, InvalidAmount, LokizError, UnknownUser
from core.i18n import t
from core.jobs import JobStore
from core.screens import Screen
from core.storage import Database
from core.studio.people import Caller
from core.studio.replies import ChatContext, Reply, Send
from core.users import User, is_platform_id, is_whole_number, parse_user_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Who an admin command is about, as the adapter saw it (a replied-to author)."""

    platform_user_id: str
    display_name: str = ""
    username: str | None = None


class AdminDesk:
    def __init__(self, ledger: CreditLedger, jobs: JobStore, db: Database,
                 admins: frozenset[tuple[str, str]]) -> None:
        self.ledger = ledger
        self.jobs = jobs
        self.db = db
        self.admins = admins

    def is_admin(self, ctx: ChatContext) -> bool:
        return (ctx.platform, str(ctx.user_id)) in self.admins

    async def handle(self, ctx: ChatContext, who: Caller, command: str, args: list[str],
                     replied: Target | None = None) -> Reply:
        """Run `command` (grant | revoke | credits | stats) with its words."""
        lang = who.lang
        allowed = self.is_admin(ctx)
        await self._log(ctx, command, args, allowed)
        if not allowed:
            log.warning("refused admin command %r from %s:%s", command, ctx.platform, ctx.user_id)
            return self._say(ctx, t(lang, "admin.refused"))
        try:
            if command in ("grant", "revoke"):
                return await self._move(ctx, lang, command, args, replied)
            if command == "credits":
                return await self._credits(ctx, lang, args, replied)
            if command == "stats":
                return await self._stats(ctx, lang)
        except LokizError as exc:
            return self._say(ctx, t(lang, exc.key, **exc.params))
        return self._say(ctx, t(lang, "admin.usage"))

    async def _move(self, ctx: ChatContext, lang: str, command: str, args: list[str],
                    replied: Target | None) -> Reply:
        words = list(args)
        target = await self._target(ctx, words, replied)
        amount = _amount(words.pop(0) if words else "")
        reason = " ".join(words)[:200]
        actor = f"{ctx.platform}:{ctx.user_id}"
        # Platforms number messages per chat: the key names platform, chat and message.
        key = f"{command}:{ctx.platform}:{ctx.chat_id}:{ctx.message_id}" if ctx.message_id else None
        if command == "grant":
            await self.ledger.grant(target.id, amount, actor=actor, reason=reason, key=key)
            return self._say(ctx, t(lang, "admin.granted", n=amount, who=target.mention_name,
                                    balance=await self.ledger.balance(target.id)))
        try:
            await self.ledger.revoke(target.id, amount, actor=actor, reason=reason, key=key)
        except InsufficientCredits as exc:
            return self._say(ctx, t(lang, "admin.revoke_too_much", n=amount, who=target.mention_name,
                                    balance=exc.params["balance"]))
        return self._say(ctx, t(lang, "admin.revoked", n=amount, who=target.mention_name,
                                balance=await self.ledger.balance(target.id)))

    async def _credits(self, ctx: ChatContext, lang: str, args: list[str], replied: Target | None) -> Reply:
        words = list(args)
        target = await self._target(ctx, words, replied)
        lines = [t(lang, "admin.credits", who=target.mention_name, ref=target.ref,
                   balance=await self.ledger.balance(target.id))]
        for entry in await self.ledger.history(target.id, limit=8):
            when = dt.datetime.fromtimestamp(entry.created_at, dt.UTC).strftime("%m-%d %H:%M")
            job = f" · {entry.job_id}" if entry.job_id else ""
            reason = f" · {entry.reason}" if entry.reason else ""
            lines.append(f"{when}  {entry.delta:+d}  {entry.kind}{job}{reason}")
        return self._say(ctx, "\n".join(lines))

    async def _stats(self, ctx: ChatContext, lang: str) -> Reply:
        counts = await self.jobs.counts_by_status()
        midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        spent = await self.ledger.spent_since(midnight.timestamp())
        jobs = ", ".join(f"{t(lang, f'status.{status}')} {n}" for status, n in counts.items() if n)
        text = t(lang, "admin.stats", users=await self.ledger.users.count(), jobs=jobs or "0",
                 spent=spent)
        return self._say(ctx, text)

    async def _target(self, ctx: ChatContext, words: list[str], replied: Target | None) -> User:
        """The user named by the first word (id, @username, platform:id) or the replied-to author."""
        first = words[0] if words else ""
        if first.startswith("@"):
            words.pop(0)
            found = await self.ledger.users.find_by_username(ctx.platform, first)
            if found is None:
                raise UnknownUser(first, target=first)
            return found
        if ":" in first:
            platform, user_id = parse_user_ref(first)
            words.pop(0)
            return (await self.ledger.ensure_user(platform, user_id, contact=False))[0]
        # Replying, `15 birthday` is an amount and a reason; only `ID AMOUNT …` names someone else.
        names_id = is_platform_id(first) and len(words) >= 2 and is_whole_number(words[1].lstrip("+"))
        if replied is not None and not names_id:
            return (await self.ledger.ensure_user(
                ctx.platform, replied.platform_user_id, display_name=replied.display_name,
                username=replied.username, contact=False,
            ))[0]
        if is_platform_id(first):
            words.pop(0)
            return (await self.ledger.ensure_user(ctx.platform, first, contact=False))[0]
        raise UnknownUser(first or "?", target=first)

    async def _log(self, ctx: ChatContext, command: str, args: list[str], allowed: bool) -> None:
        async with self.db.transaction() as tx:
            await tx.admin_log.add(
                platform=ctx.platform, actor=str(ctx.user_id),
                command=" ".join([command, *args])[:300], allowed=allowed, now=time.time(),
            )

    def _say(self, ctx: ChatContext, text: str) -> Reply:
        return Reply([Send(Screen(text, ephemeral=True), ctx.message_id)])


def _amount(word: str) -> int:
    """An admin's amount: ASCII digits, an optional "+"; InvalidAmount otherwise."""
    digits = word[1:] if word.startswith("+") else word
    if not is_whole_number(digits) or len(digits) > 12:
        raise InvalidAmount(f"{word!r} is not a whole number", amount=word)
    return int(digits)
