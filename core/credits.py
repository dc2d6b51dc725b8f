"""The credit ledger (SPEC §3).

Every change is an append-only entry with who, why, job id and a unique
idempotency key; `users.balance` is kept equal to the sum of a user's entries
in the same transaction, and a CHECK keeps it from going below zero.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.errors import AlreadyStarted, InsufficientCredits, InvalidAmount, KeyReused, UnknownUser
from core.storage import Database, Overdraft, Row, Transaction
from core.users import User, UserDirectory

KINDS = ("starter", "grant", "revoke", "charge", "refund")


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    user_id: int
    delta: int
    kind: str
    actor: str
    reason: str
    job_id: str | None
    idempotency_key: str
    balance_after: int
    created_at: float

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LedgerEntry:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


class CreditLedger:
    """Grant, revoke, charge, refund, balance and history — each idempotent by key."""

    def __init__(
        self, db: Database, users: UserDirectory, *, starter_credits: int,
        platform_starter: Mapping[str, int] | None = None,
    ) -> None:
        self.db = db
        self.users = users
        self.starter_credits = starter_credits
        self.platform_starter = dict(platform_starter or {})

    def starter_for(self, platform: str) -> int:
        """Starter credits a new user of `platform` gets (web users may get fewer: cookies are free)."""
        return self.platform_starter.get(platform, self.starter_credits)

    # --- users --------------------------------------------------------------
    async def ensure_user(
        self,
        platform: str,
        platform_user_id: str,
        *,
        display_name: str = "",
        username: str | None = None,
        platform_language: str | None = None,
        contact: bool = True,
    ) -> tuple[User, bool]:
        """The user, with starter credits on first contact; (user, is_first_contact).

        `contact=False` records a user without greeting them (an admin granting
        credits before the user's first message); their starter comes later.
        """
        if contact:  # every chat update lands here: a known user costs one read, no write
            known = await self.users.known(
                platform, platform_user_id, display_name=display_name, username=username,
                platform_language=platform_language,
            )
            if known is not None:
                return known, False
        async with self.db.transaction() as tx:
            if contact:
                # The common first contact: the user and their starter entry in one unit, two
                # statements. Only the update whose INSERT made the row gets here.
                created = await tx.users.insert_contacted(
                    platform, platform_user_id, display_name=display_name, username=username,
                    platform_language=platform_language, now=time.time(),
                )
                if created is not None:
                    user = User.from_row(created)
                    entry = await self._settle_starter(tx, user.id, platform)
                    return (replace(user, balance=entry.balance_after) if entry else user), True
            user, _ = await self.users.upsert(
                tx,
                platform,
                platform_user_id,
                display_name=display_name,
                username=username,
                platform_language=platform_language,
            )
            if not contact:
                return user, False
            if not await tx.users.mark_contacted(user.id):
                return user, False
            await self._settle_starter(tx, user.id, platform)
            return await self._reload(tx, user.id), True

    async def _settle_starter(
        self, tx: Transaction, user_id: int, platform: str | None = None,
    ) -> LedgerEntry | None:
        # Once per user, whoever comes first: their first message or an admin's grant.
        if platform is None and self.platform_starter:
            row = await tx.users.by_id(user_id)
            platform = row["platform"] if row is not None else ""
        starter = self.starter_for(platform or "")
        if starter <= 0:
            return None
        return await self._append(
            tx, user_id, starter, "starter", actor="system",
            reason="welcome", key=f"starter:{user_id}", strict=False,
        )

    # --- operations -----------------------------------------------------------
    async def grant(
        self, user_id: int, amount: int, *, actor: str, reason: str = "", key: str | None = None
    ) -> LedgerEntry:
        """Add credits (settling the user's starter credits first, so balances read true).

        A repeated `key` returns the first entry; KeyReused if it named another change.
        """
        _positive(amount)
        async with self.db.transaction() as tx:
            await self._settle_starter(tx, user_id)
            return await self._append(
                tx, user_id, amount, "grant", actor=actor, reason=reason,
                key=key or f"grant:{uuid.uuid4().hex}",
            )

    async def revoke(
        self, user_id: int, amount: int, *, actor: str, reason: str = "", key: str | None = None
    ) -> LedgerEntry:
        """Take credits back; refused (InsufficientCredits) past the balance."""
        _positive(amount)
        async with self.db.transaction() as tx:
            await self._settle_starter(tx, user_id)
            return await self._append(
                tx, user_id, -amount, "revoke", actor=actor, reason=reason,
                key=key or f"revoke:{uuid.uuid4().hex}",
            )

    async def charge(
        self, tx: Transaction, user_id: int, amount: int, *, job_id: str, reason: str = "",
        key: str | None = None,
    ) -> LedgerEntry:
        """Charge for a job inside the caller's transaction (the one that stores the job).

        `key` names the press that asked for it (message and screen version): a second
        press of the same screen raises AlreadyStarted, so the caller's job is rolled back.
        """
        if amount < 0:
            raise InvalidAmount("a price cannot be negative", amount=amount)
        entry = await self._append(
            tx, user_id, -amount, "charge", actor="system", reason=reason,
            job_id=job_id, key=key or f"charge:{job_id}",
        )
        if entry.job_id != job_id:
            raise AlreadyStarted(f"{key} already charged job {entry.job_id}", id=entry.job_id)
        return entry

    async def refund(
        self, tx: Transaction, job_id: str, *, reason: str = ""
    ) -> LedgerEntry | None:
        """Give back exactly what a job was charged, once; None if it was never charged."""
        entry = await tx.ledger.refund(job_id, reason=reason, now=time.time())
        return None if entry is None else LedgerEntry.from_row(entry)

    async def charge_now(self, user_id: int, amount: int, *, job_id: str) -> LedgerEntry:
        async with self.db.transaction() as tx:
            return await self.charge(tx, user_id, amount, job_id=job_id)

    async def refund_now(self, job_id: str, *, reason: str = "") -> LedgerEntry | None:
        async with self.db.transaction() as tx:
            return await self.refund(tx, job_id, reason=reason)

    async def balance(self, user_id: int) -> int:
        async with self.db.read() as tx:
            value = await tx.users.balance(user_id)
        if value is None:
            raise UnknownUser(f"no user #{user_id}", target=str(user_id))
        return int(value)

    async def history(self, user_id: int, limit: int = 10) -> list[LedgerEntry]:
        """The newest `limit` entries, newest first."""
        async with self.db.read() as tx:
            rows = await tx.ledger.history(user_id, limit)
        return [LedgerEntry.from_row(r) for r in rows]

    async def ledger_sum(self, user_id: int) -> int:
        async with self.db.read() as tx:
            return await tx.ledger.sum_for(user_id)

    async def presses(self, prefix: str) -> int:
        """How many charges are keyed under `prefix` (the versions of a screen already used)."""
        async with self.db.read() as tx:
            return await tx.ledger.count_keys_from(prefix)

    async def spent_since(self, since: float) -> int:
        """Credits charged minus refunded since `since` (for admin stats)."""
        async with self.db.read() as tx:
            return await tx.ledger.spent_since(since)

    # --- the one write path ---------------------------------------------------
    async def _append(
        self,
        tx: Transaction,
        user_id: int,
        delta: int,
        kind: str,
        *,
        actor: str,
        reason: str,
        key: str,
        job_id: str | None = None,
        strict: bool = True,
    ) -> LedgerEntry:
        # The store writes one entry (or finds the one already under `key`); the database
        # moves the balance and refuses overdrafts.
        try:
            row: Row | None = await tx.ledger.append(
                user_id, delta, kind, actor=actor, reason=reason, key=key, job_id=job_id,
                now=time.time(),
            )
        except Overdraft as refused:
            raise InsufficientCredits(
                f"needs {-delta} credits, balance is {refused.balance}",
                needed=-delta, balance=refused.balance, shortfall=-delta - refused.balance,
            ) from None
        if row is None:
            raise UnknownUser(f"no user #{user_id}", target=str(user_id))
        entry = LedgerEntry.from_row(row)
        # A repeat must be the same change; anything else under this key is a bug, never a no-op.
        if (entry.user_id, entry.kind) != (user_id, kind) or (strict and entry.delta != delta):
            raise KeyReused(
                f"key {key!r} already holds {entry.kind} {entry.delta:+d} for user #{entry.user_id}",
                key=key,
            )
        return entry

    async def _reload(self, tx: Transaction, user_id: int) -> User:
        row = await tx.users.by_id(user_id)
        assert row is not None
        return User.from_row(row)


def _positive(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidAmount(f"amount must be a positive whole number, got {amount!r}", amount=amount)
    if amount > 1_000_000_000:
        raise InvalidAmount(f"amount {amount} is too large", amount=amount)
