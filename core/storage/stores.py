"""The stores of one unit of work: every SQL statement of the product is in this file.

Each store is bound to the transaction of the unit of work that made it, so
whatever a caller does through `uow.jobs`, `uow.ledger`, `uow.users`, … commits
or rolls back together. Statements are portable SQL with `?` placeholders; the
few places where SQLite and PostgreSQL differ branch on `dialect`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.storage.base import ConstraintViolation, Executor, Overdraft, Row

JOB_COLUMNS = (
    "id", "user_id", "platform", "chat_id", "language", "session_id", "reply_to_message_id",
    "status_message_id", "action", "model", "backend", "request", "prepared_inputs",
    "prediction_id", "price", "status", "error_class", "error_detail", "output_path",
    "delivered_message_id", "delivered_file_id", "delivery_attempts", "likes", "created_at",
    "started_at", "deadline_at", "finished_at", "updated_at", "delivery_sends",
    "delivery_unconfirmed", "owner_id", "owner_name", "creating_since", "claimed_by", "claimed_until",
    "webhook_prediction",
)
_JOB_INSERTED = (
    "id", "user_id", "platform", "chat_id", "language", "session_id", "reply_to_message_id",
    "status_message_id", "action", "model", "backend", "request", "price", "status",
    "created_at", "updated_at", "owner_id", "owner_name",
)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


class _Store:
    def __init__(self, tx: Executor, after_commit: Callable[[Callable[[], None]], None]) -> None:
        self.tx = tx
        self._after_commit = after_commit

    @property
    def postgres(self) -> bool:
        return self.tx.dialect == "postgresql"


class UserRows(_Store):
    """The `users` table."""

    async def by_platform_id(self, platform: str, platform_user_id: str) -> Row | None:
        return await self.tx.fetchone(
            "SELECT * FROM users WHERE platform = ? AND platform_user_id = ?",
            (platform, platform_user_id),
        )

    async def by_id(self, user_id: int) -> Row | None:
        return await self.tx.fetchone("SELECT * FROM users WHERE id = ?", (user_id,))

    async def by_username(self, platform: str, username: str) -> Row | None:
        """The most recently seen user of `platform` called `username` (any case)."""
        return await self.tx.fetchone(
            "SELECT * FROM users WHERE platform = ? AND lower(username) = lower(?)"
            " ORDER BY seen_at DESC LIMIT 1",
            (platform, username),
        )

    async def insert_if_new(
        self, platform: str, platform_user_id: str, *, display_name: str,
        username: str | None, platform_language: str | None, now: float,
    ) -> bool:
        """Create the user unless they exist (two instances may race on a first message)."""
        added = await self.tx.fetchall(
            "INSERT INTO users (platform, platform_user_id, display_name, username,"
            " platform_language, created_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (platform, platform_user_id) DO NOTHING RETURNING id",
            (platform, platform_user_id, display_name, username, platform_language, now, now),
        )
        return bool(added)

    async def insert_contacted(
        self, platform: str, platform_user_id: str, *, display_name: str,
        username: str | None, platform_language: str | None, now: float,
    ) -> Row | None:
        """A new user's row, created as greeted (their first message); None if they exist
        (another update of theirs, or an admin's grant, came first)."""
        return await self.tx.fetchone(
            "INSERT INTO users (platform, platform_user_id, display_name, username,"
            " platform_language, created_at, seen_at, contacted) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
            " ON CONFLICT (platform, platform_user_id) DO NOTHING RETURNING *",
            (platform, platform_user_id, display_name, username, platform_language, now, now),
        )

    async def refresh(
        self, user_id: int, *, display_name: str, username: str | None,
        platform_language: str | None, now: float,
    ) -> None:
        """Record what the platform now says about the user; empty values keep the old ones."""
        await self.tx.execute(
            "UPDATE users SET display_name = COALESCE(NULLIF(?, ''), display_name),"
            " username = COALESCE(?, username),"
            " platform_language = COALESCE(?, platform_language), seen_at = ?"
            " WHERE id = ?",
            (display_name, username, platform_language, now, user_id),
        )

    async def mark_contacted(self, user_id: int) -> bool:
        """True only for the one call that marks the user's first contact."""
        changed = await self.tx.execute(
            "UPDATE users SET contacted = 1 WHERE id = ? AND contacted = 0", (user_id,)
        )
        return changed > 0

    async def set_language(self, user_id: int, language: str) -> None:
        await self.tx.execute("UPDATE users SET language = ? WHERE id = ?", (language, user_id))

    async def count(self) -> int:
        return int(await self.tx.fetchval("SELECT COUNT(*) FROM users"))

    async def balance(self, user_id: int) -> int | None:
        value = await self.tx.fetchval("SELECT balance FROM users WHERE id = ?", (user_id,))
        return None if value is None else int(value)

    async def lock(self, user_id: int) -> int | None:
        """The balance, with the user's row locked until the transaction ends.

        SQLite already serialises writers (BEGIN IMMEDIATE); PostgreSQL needs the
        row lock so a balance read and the write after it see the same value.
        """
        suffix = " FOR UPDATE" if self.postgres else ""
        value = await self.tx.fetchval(f"SELECT balance FROM users WHERE id = ?{suffix}", (user_id,))
        return None if value is None else int(value)


class LedgerRows(_Store):
    """The append-only `ledger`; a trigger moves `users.balance` with every entry."""

    def __init__(
        self, tx: Executor, after_commit: Callable[[Callable[[], None]], None],
        totals: dict[str, int],
    ) -> None:
        super().__init__(tx, after_commit)
        self._totals = totals

    def _count(self, row: Row) -> None:
        kind, amount = str(row["kind"]), abs(int(row["delta"]))
        if kind in self._totals:
            def add() -> None:
                self._totals[kind] += amount
            self._after_commit(add)

    async def append(
        self, user_id: int, delta: int, kind: str, *, actor: str, reason: str, key: str,
        job_id: str | None, now: float,
    ) -> Row | None:
        """Write one entry, or return the entry already written under `key`.

        None when the user does not exist; raises Overdraft (writing nothing) when
        the entry would take the balance below zero.
        """
        if self.postgres:
            return await self._append_locked(
                user_id, delta, kind, actor=actor, reason=reason, key=key, job_id=job_id, now=now
            )
        # SQLite: one statement. Writers are serialised; the users CHECK refuses overdrafts.
        try:
            rows = await self.tx.fetchall(
                "INSERT INTO ledger (user_id, delta, kind, actor, reason, job_id,"
                " idempotency_key, balance_after, created_at)"
                " SELECT id, ?, ?, ?, ?, ?, ?, balance + ?, ? FROM users WHERE id = ?"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
                (delta, kind, actor, reason, job_id, key, delta, now, user_id),
            )
        except ConstraintViolation:
            # SQLite tests the CHECK before the key: a repeat must still come back as a repeat.
            existing = await self.by_key(key)
            if existing is not None:
                return existing
            raise Overdraft(await UserRows(self.tx, self._after_commit).balance(user_id) or 0) from None
        if rows:
            self._count(rows[0])
            return rows[0]
        return await self.by_key(key)

    async def _append_locked(
        self, user_id: int, delta: int, kind: str, *, actor: str, reason: str, key: str,
        job_id: str | None, now: float,
    ) -> Row | None:
        # PostgreSQL runs READ COMMITTED: lock the user's row first, so the balance read
        # here is the one the entry is written against, and a repeat of `key` queued
        # behind the first sees its entry.
        found = await self.tx.fetchone(
            "SELECT u.balance, l.id AS entry FROM users AS u"
            " LEFT JOIN ledger AS l ON l.idempotency_key = ? WHERE u.id = ? FOR UPDATE OF u",
            (key, user_id),
        )
        if found is None:
            return await self.by_key(key)
        if found["entry"] is not None:
            return await self.by_key(key)
        balance = int(found["balance"])
        if balance + delta < 0:
            raise Overdraft(balance)
        rows = await self.tx.fetchall(
            "INSERT INTO ledger (user_id, delta, kind, actor, reason, job_id,"
            " idempotency_key, balance_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
            (user_id, delta, kind, actor, reason, job_id, key, balance + delta, now),
        )
        if rows:
            self._count(rows[0])
            return rows[0]
        return await self.by_key(key)

    async def refund(self, job_id: str, *, reason: str, now: float) -> Row | None:
        """Give back what `job_id` was charged, once; the refund entry, or None if never charged."""
        # A job's charge is found by job id and kind: its key may be a press's, not the job's.
        if self.postgres:
            charge = await self.tx.fetchone(
                "SELECT user_id FROM ledger WHERE job_id = ? AND kind = 'charge'", (job_id,)
            )
            if charge is None:
                return None
            await UserRows(self.tx, self._after_commit).lock(int(charge["user_id"]))
        rows = await self.tx.fetchall(
            "INSERT INTO ledger (user_id, delta, kind, actor, reason, job_id, idempotency_key,"
            " balance_after, created_at)"
            " SELECT c.user_id, -c.delta, 'refund', 'system', ?, c.job_id, ?,"
            " (SELECT balance FROM users WHERE id = c.user_id) - c.delta, ?"
            " FROM ledger AS c WHERE c.job_id = ? AND c.kind = 'charge'"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
            (reason, f"refund:{job_id}", now, job_id),
        )
        if rows:
            self._count(rows[0])
            return rows[0]
        return await self.by_key(f"refund:{job_id}")

    async def by_key(self, key: str) -> Row | None:
        return await self.tx.fetchone("SELECT * FROM ledger WHERE idempotency_key = ?", (key,))

    async def count_keys_from(self, prefix: str) -> int:
        """How many entries have a key starting with `prefix` (a range on the unique key)."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM ledger WHERE idempotency_key >= ? AND idempotency_key < ?",
            (prefix, upper),
        ))

    async def history(self, user_id: int, limit: int) -> list[Row]:
        """The newest `limit` entries of a user, newest first."""
        return await self.tx.fetchall(
            "SELECT * FROM ledger WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
        )

    async def sum_for(self, user_id: int) -> int:
        return int(
            await self.tx.fetchval(
                "SELECT COALESCE(SUM(delta), 0) FROM ledger WHERE user_id = ?", (user_id,)
            )
        )

    async def spent_since(self, since: float) -> int:
        """Credits charged minus refunded since `since`."""
        return int(
            await self.tx.fetchval(
                "SELECT COALESCE(-SUM(delta), 0) FROM ledger"
                " WHERE kind IN ('charge', 'refund') AND created_at >= ?",
                (since,),
            )
        )


class JobRows(_Store):
    """The `jobs` table and its likes. Every transition is a compare-and-set on `status`."""

    async def insert(self, row: Row) -> None:
        await self.tx.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_INSERTED)}) VALUES ({_marks(_JOB_INSERTED)})",
            tuple(row[column] for column in _JOB_INSERTED),
        )

    async def get(self, job_id: str) -> Row | None:
        return await self.tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))

    async def with_status(self, statuses: Sequence[str]) -> list[Row]:
        return await self.tx.fetchall(
            f"SELECT * FROM jobs WHERE status IN ({_marks(statuses)}) ORDER BY created_at",
            tuple(statuses),
        )

    async def by_prediction(self, prediction_id: str) -> Row | None:
        return await self.tx.fetchone(
            "SELECT * FROM jobs WHERE prediction_id = ?", (prediction_id,)
        )

    async def for_user(self, user_id: int, limit: int) -> list[Row]:
        """A user's newest jobs, newest first (insertion order breaks ties)."""
        order = "seq" if self.postgres else "rowid"
        return await self.tx.fetchall(
            f"SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC, {order} DESC LIMIT ?",
            (user_id, limit),
        )

    async def active_count(self, user_id: int, active: Sequence[str]) -> int:
        """A user's jobs in `active` states, counted under the user's row lock.

        The lock (PostgreSQL) makes two concurrent submits of one user count in turn,
        so neither passes the per-user limit on a stale count.
        """
        await UserRows(self.tx, self._after_commit).lock(user_id)
        return int(
            await self.tx.fetchval(
                f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({_marks(active)})",
                (user_id, *active),
            )
        )

    async def counts_by_status(self) -> dict[str, int]:
        found = await self.tx.fetchall("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in found}

    async def recent_run_seconds(self, model: str, done: Sequence[str], limit: int) -> list[float]:
        """Generation times of the newest finished jobs of `model`."""
        found = await self.tx.fetchall(
            "SELECT finished_at - started_at AS seconds FROM jobs WHERE model = ?"
            f" AND status IN ({_marks(done)}) AND started_at IS NOT NULL"
            " AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
            (model, *done, limit),
        )
        return [float(row["seconds"]) for row in found if row["seconds"] is not None]

    async def transition(
        self, job_id: str, *, allowed: Sequence[str] | None, now: float, unsent: bool = False,
        **changes: Any,
    ) -> bool:
        """Set columns of a job whose status is in `allowed` (None: any status) and, with
        `unsent`, that no send may have reached the chat; True if it did."""
        unknown = set(changes) - set(JOB_COLUMNS)
        if unknown or not changes:
            raise ValueError(f"not job columns: {sorted(unknown) or 'none given'}")
        sets = ", ".join(f"{column} = ?" for column in changes)
        where, params = "id = ?", [job_id]
        if allowed is not None:
            where += f" AND status IN ({_marks(allowed)})"
            params.extend(allowed)
        if unsent:
            where += " AND delivery_sends = 0"
        changed = await self.tx.execute(
            f"UPDATE jobs SET {sets}, updated_at = ? WHERE {where}",
            (*changes.values(), now, *params),
        )
        return changed > 0

    async def set_running(
        self, job_id: str, prediction_id: str, *, deadline_at: float, allowed: Sequence[str],
        now: float,
    ) -> bool:
        """Running with `prediction_id`; the first start time and deadline are kept."""
        changed = await self.tx.execute(
            "UPDATE jobs SET status = 'running', prediction_id = ?,"
            " started_at = COALESCE(started_at, ?), deadline_at = COALESCE(deadline_at, ?),"
            f" updated_at = ? WHERE id = ? AND status IN ({_marks(allowed)})",
            (prediction_id, now, deadline_at, now, job_id, *allowed),
        )
        return changed > 0

    async def claim(
        self, job_id: str, *, owner: str, until: float, allowed: Sequence[str], now: float
    ) -> Row | None:
        """Take the job for `owner` until `until` if it is in `allowed` and nobody else holds
        a live claim on it; the job as claimed, or None."""
        rows = await self.tx.fetchall(
            "UPDATE jobs SET claimed_by = ?, claimed_until = ?"
            f" WHERE id = ? AND status IN ({_marks(allowed)})"
            " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until < ?) RETURNING *",
            (owner, until, job_id, *allowed, owner, now),
        )
        return rows[0] if rows else None

    async def renew_claims(self, job_ids: Sequence[str], *, owner: str, until: float) -> list[str]:
        """Extend `owner`'s claims on `job_ids` (one statement); the ids still theirs."""
        rows = await self.tx.fetchall(
            f"UPDATE jobs SET claimed_until = ? WHERE id IN ({_marks(job_ids)}) AND claimed_by = ?"
            " RETURNING id",
            (until, *job_ids, owner),
        )
        return [str(row["id"]) for row in rows]

    async def release_claim(self, job_id: str, *, owner: str) -> None:
        await self.tx.execute(
            "UPDATE jobs SET claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?",
            (job_id, owner),
        )

    # --- the deployment-wide queue (PostgreSQL mode) ---------------------------------
    def _fair_order(
        self, now: float, platforms: Sequence[str] = ()
    ) -> tuple[str, tuple[Any, ...]]:
        """Queued jobs nobody holds, round-robin across users: every user's first active
        job (oldest first; one generating counts), then every user's second, and so on.
        Columns: id, place. With `platforms`, only jobs of those platforms."""
        order = "seq" if self.postgres else "rowid"
        only = f" AND platform IN ({_marks(platforms)})" if platforms else ""
        return (
            "SELECT id, ROW_NUMBER() OVER (ORDER BY turn, created_at, n) AS place FROM"
            f" (SELECT id, created_at, {order} AS n, status, claimed_by, claimed_until, platform,"
            f" ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY created_at, {order}) AS turn"
            " FROM jobs WHERE status IN ('queued', 'running')) AS active"
            f" WHERE status = 'queued' AND (claimed_by IS NULL OR claimed_until < ?){only}",
            (now, *platforms),
        )

    async def admit(
        self, *, owner: str, until: float, now: float, ceiling: int, platforms: Sequence[str],
        lock_key: int,
    ) -> tuple[str, str | None]:
        """Give `owner` its next job, deployment-wide, under one lock:

        - first a started job nobody holds (its instance died or handed it back);
        - else, while fewer than `ceiling` jobs generate (running, or queued and held),
          the queued job first in the fair order (of the `platforms` it can deliver to).

        Returns ("job", id), ("full", None) or ("empty", None)."""
        await self.tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key,))
        orphan = await self.tx.fetchone(
            "UPDATE jobs SET claimed_by = ?, claimed_until = ? WHERE id = ("
            " SELECT id FROM jobs WHERE status IN ('running', 'succeeded')"
            f" AND platform IN ({_marks(platforms)})"
            " AND (claimed_by IS NULL OR claimed_until < ?) ORDER BY created_at LIMIT 1)"
            " RETURNING id",
            (owner, until, *platforms, now),
        )
        if orphan is not None:
            return "job", str(orphan["id"])
        busy = int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE status = 'running'"
            " OR (status = 'queued' AND claimed_by IS NOT NULL AND claimed_until >= ?)",
            (now,),
        ))
        fair, params = self._fair_order(now, platforms)  # jobs this instance can deliver
        head = await self.tx.fetchone(f"{fair} ORDER BY place LIMIT 1", params)
        if head is None:
            return "empty", None
        if busy >= ceiling:
            return "full", None
        changed = await self.tx.execute(
            "UPDATE jobs SET claimed_by = ?, claimed_until = ? WHERE id = ? AND status = 'queued'",
            (owner, until, head["id"]),
        )
        return ("job", str(head["id"])) if changed else ("full", None)

    async def queue_position(self, job_id: str, *, now: float) -> int | None:
        """The job's place in the fair order (1 = next to start), or None if not waiting."""
        fair, params = self._fair_order(now)
        found = await self.tx.fetchval(f"SELECT place FROM ({fair}) AS q WHERE id = ?",
                                       (*params, job_id))
        return None if found is None else int(found)

    async def waiting(self, *, now: float, limit: int) -> list[Row]:
        """The first `limit` waiting jobs in the fair order, with their `place`."""
        fair, params = self._fair_order(now)
        return await self.tx.fetchall(
            f"SELECT jobs.*, q.place FROM ({fair}) AS q JOIN jobs ON jobs.id = q.id"
            " ORDER BY q.place LIMIT ?",
            (*params, limit),
        )

    async def unheld_unfinished(self, *, now: float) -> int:
        """Unfinished jobs no instance holds now."""
        return int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'succeeded')"
            " AND (claimed_by IS NULL OR claimed_until < ?)",
            (now,),
        ))

    async def held_unfinished(self, *, now: float) -> int:
        """Unfinished jobs an instance holds now (each by the one step running it)."""
        return int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running', 'succeeded')"
            " AND claimed_by IS NOT NULL AND claimed_until >= ?",
            (now,),
        ))

    async def store_webhook(self, prediction_id: str, payload: str) -> str | None:
        """Record a finished prediction on its active job; the job's id, or None."""
        row = await self.tx.fetchone(
            "UPDATE jobs SET webhook_prediction = ? WHERE prediction_id = ?"
            " AND status IN ('queued', 'running') RETURNING id",
            (payload, prediction_id),
        )
        return None if row is None else str(row["id"])

    async def stored_webhook(self, prediction_id: str) -> str | None:
        return await self.tx.fetchval(  # type: ignore[no-any-return]
            "SELECT webhook_prediction FROM jobs WHERE prediction_id = ?", (prediction_id,)
        )

    async def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY, sent when this transaction commits."""
        await self.tx.execute("SELECT pg_notify(?, ?)", (channel, payload))

    async def tasks_pending(self, task_name: str) -> int:
        """procrastinate jobs of `task_name` waiting or being done."""
        return int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM procrastinate_jobs WHERE task_name = ?"
            " AND status IN ('todo', 'doing')",
            (task_name,),
        ))

    async def count_delivery_attempt(self, job_id: str, *, allowed: Sequence[str], now: float) -> bool:
        changed = await self.tx.execute(
            "UPDATE jobs SET delivery_attempts = delivery_attempts + 1, updated_at = ?"
            f" WHERE id = ? AND status IN ({_marks(allowed)})",
            (now, job_id, *allowed),
        )
        return changed > 0

    async def count_send(self, job_id: str, step: int, *, allowed: Sequence[str], now: float) -> bool:
        """Add `step` (+1 before a send, -1 when it certainly did not arrive) to the sends
        that may have reached the chat; never below zero."""
        changed = await self.tx.execute(
            "UPDATE jobs SET delivery_sends = delivery_sends + ?, updated_at = ?"
            f" WHERE id = ? AND status IN ({_marks(allowed)}) AND delivery_sends + ? >= 0",
            (step, now, job_id, *allowed, step),
        )
        return changed > 0

    async def like(self, job_id: str, user_id: int) -> int:
        """Count one like per user; return the job's total."""
        added = await self.tx.fetchall(
            "INSERT INTO job_likes (job_id, user_id) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING RETURNING job_id",
            (job_id, user_id),
        )
        if added:
            await self.tx.execute("UPDATE jobs SET likes = likes + 1 WHERE id = ?", (job_id,))
        return int(await self.tx.fetchval("SELECT likes FROM jobs WHERE id = ?", (job_id,)) or 0)


class SessionRows(_Store):
    """Studio sessions, saved with optimistic versions."""

    async def insert(self, row: Row) -> None:
        await self.tx.execute(
            "INSERT INTO sessions (id, user_id, platform, chat_id, chat_kind, step, data,"
            " awaiting, message_id, version, created_at, updated_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row["id"], row["user_id"], row["platform"], row["chat_id"], row["chat_kind"],
             row["step"], row["data"], row["awaiting"], row["message_id"], row["version"],
             row["created_at"], row["updated_at"], row["expires_at"]),
        )

    async def get(self, session_id: str) -> Row | None:
        return await self.tx.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))

    async def delete_expired(self, now: float) -> int:
        return await self.tx.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))

    async def save(self, row: Row, *, version: int) -> bool:
        """Store `row` as the next version if the stored one is still `version`."""
        changed = await self.tx.execute(
            "UPDATE sessions SET step = ?, data = ?, awaiting = ?, message_id = ?,"
            " version = version + 1, updated_at = ?, expires_at = ?"
            " WHERE id = ? AND version = ?",
            (row["step"], row["data"], row["awaiting"], row["message_id"], row["updated_at"],
             row["expires_at"], row["id"], version),
        )
        return changed > 0

    async def latest(
        self, *, user_id: int, platform: str, chat_id: str, now: float, awaiting: bool
    ) -> Row | None:
        condition = " AND awaiting IS NOT NULL" if awaiting else ""
        return await self.tx.fetchone(
            "SELECT * FROM sessions WHERE user_id = ? AND platform = ? AND chat_id = ?"
            f" AND expires_at > ?{condition} ORDER BY updated_at DESC LIMIT 1",
            (user_id, platform, chat_id, now),
        )

    async def latest_with(self, user_id: int, key: str, now: float) -> Row | None:
        """The user's newest live session whose JSON data has `key`."""
        has_key = (
            "CAST(data AS jsonb) ->> CAST(? AS text) IS NOT NULL" if self.postgres
            else "json_extract(data, '$.' || ?) IS NOT NULL"
        )
        return await self.tx.fetchone(
            f"SELECT * FROM sessions WHERE user_id = ? AND expires_at > ? AND {has_key}"
            " ORDER BY updated_at DESC LIMIT 1",
            (user_id, now, key),
        )


class PlatformFileRows(_Store):
    """Platform file ids of uploaded media, by content hash."""

    async def get(self, platform: str, sha256: str) -> str | None:
        found = await self.tx.fetchval(
            "SELECT file_id FROM platform_files WHERE platform = ? AND sha256 = ?",
            (platform, sha256),
        )
        return None if found is None else str(found)

    async def put(self, platform: str, sha256: str, file_id: str) -> None:
        await self.tx.execute(
            "INSERT INTO platform_files (platform, sha256, file_id) VALUES (?, ?, ?)"
            " ON CONFLICT (platform, sha256) DO UPDATE SET file_id = excluded.file_id",
            (platform, sha256, file_id),
        )


class AdminLogRows(_Store):
    """Every admin command tried, allowed or refused."""

    async def add(self, *, platform: str, actor: str, command: str, allowed: bool, now: float) -> None:
        await self.tx.execute(
            "INSERT INTO admin_log (platform, actor, command, allowed, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (platform, actor, command, int(allowed), now),
        )

    async def recent(self, limit: int) -> list[Row]:
        return await self.tx.fetchall(
            "SELECT * FROM admin_log ORDER BY id DESC LIMIT ?", (limit,)
        )


class MediaUsageRows(_Store):
    """Which user brought which input file, for the per-user media quota."""

    async def used(self, user_id: int, *, since: float, besides: str = "") -> int:
        """Bytes the user brought since `since`, not counting the file `besides`."""
        return int(await self.tx.fetchval(
            "SELECT COALESCE(SUM(bytes), 0) FROM media_usage"
            " WHERE user_id = ? AND used_at >= ? AND path <> ?",
            (user_id, since, besides),
        ))

    async def put(self, user_id: int, path: str, size: int, now: float) -> None:
        await self.tx.execute(
            "INSERT INTO media_usage (user_id, path, bytes, used_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (user_id, path) DO UPDATE SET bytes = excluded.bytes,"
            " used_at = excluded.used_at",
            (user_id, path, size, now),
        )

    async def forget(self, user_id: int, path: str) -> None:
        await self.tx.execute(
            "DELETE FROM media_usage WHERE user_id = ? AND path = ?", (user_id, path)
        )

    async def forget_before(self, cutoff: float) -> None:
        await self.tx.execute("DELETE FROM media_usage WHERE used_at < ?", (cutoff,))


# --- Social: posts, likes and creator totals (migration 010) ---------------------------------

POST_COLUMNS = (
    "id", "job_id", "platform", "chat_id", "owner_id", "created_at", "source_post_id",
    "generation", "clip_path", "file_id", "message_id", "search_text", "likes", "score",
    "deleted_at",
)
_POST_INSERTED = (
    "job_id", "platform", "chat_id", "owner_id", "created_at", "source_post_id", "generation",
    "clip_path", "file_id", "message_id", "search_text",
)
# The owner's names come along with every post a screen shows.
_POST_WITH_OWNER = (
    "SELECT p.*, u.username AS owner_username, u.display_name AS owner_display_name,"
    " u.platform_user_id AS owner_platform_user_id FROM posts AS p"
    " JOIN users AS u ON u.id = p.owner_id"
)


def _like_escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class PostRows(_Store):
    """The `posts` table: one row per delivered clip, with its lineage and like counts."""

    async def insert_if_new(self, row: Row) -> Row:
        """Insert the post of `row["job_id"]` unless it exists; the stored row either way."""
        await self.tx.execute(
            f"INSERT INTO posts ({', '.join(_POST_INSERTED)}) VALUES ({_marks(_POST_INSERTED)})"
            " ON CONFLICT (job_id) DO NOTHING",
            tuple(row.get(column) for column in _POST_INSERTED),
        )
        stored = await self.by_job(str(row["job_id"]))
        assert stored is not None
        return stored

    async def get(self, post_id: int) -> Row | None:
        """A post with its owner's names (deleted ones too)."""
        return await self.tx.fetchone(f"{_POST_WITH_OWNER} WHERE p.id = ?", (post_id,))

    async def by_job(self, job_id: str) -> Row | None:
        return await self.tx.fetchone(f"{_POST_WITH_OWNER} WHERE p.job_id = ?", (job_id,))

    async def by_message(self, platform: str, chat_id: str, message_id: str) -> Row | None:
        """The post delivered as `message_id` in a chat (a remix started from its message)."""
        return await self.tx.fetchone(
            f"{_POST_WITH_OWNER} WHERE p.platform = ? AND p.chat_id = ? AND p.message_id = ?"
            " ORDER BY p.id DESC LIMIT 1",
            (platform, chat_id, message_id),
        )

    async def ancestors(self, post_id: int, limit: int) -> list[Row]:
        """The post and the posts it was remixed from, newest generation first."""
        return await self.tx.fetchall(
            "WITH RECURSIVE chain (id, depth) AS (SELECT CAST(? AS BIGINT), 0"
            " UNION ALL SELECT p.source_post_id, c.depth + 1 FROM chain AS c"
            " JOIN posts AS p ON p.id = c.id"
            " WHERE p.source_post_id IS NOT NULL AND c.depth < ?)"
            f" {_POST_WITH_OWNER} JOIN chain AS c ON c.id = p.id ORDER BY c.depth",
            (post_id, limit - 1),
        )

    async def feed(
        self, platform: str, chat_id: str, *, since: float, limit: int, offset: int
    ) -> list[Row]:
        """A chat's live posts made since `since`, most liked (by others) first."""
        return await self.tx.fetchall(
            f"{_POST_WITH_OWNER} JOIN (SELECT id AS top_id, score AS top_score FROM posts"
            " WHERE platform = ? AND chat_id = ? AND created_at >= ? AND deleted_at IS NULL"
            " ORDER BY score DESC, id DESC LIMIT ? OFFSET ?) AS top ON top.top_id = p.id"
            " ORDER BY top.top_score DESC, p.id DESC",
            (platform, chat_id, since, limit, offset),
        )

    async def feed_size(self, platform: str, chat_id: str, *, since: float) -> int:
        return int(await self.tx.fetchval(
            "SELECT COUNT(*) FROM posts WHERE platform = ? AND chat_id = ? AND created_at >= ?"
            " AND deleted_at IS NULL",
            (platform, chat_id, since),
        ))

    async def of_owner(self, owner_id: int, words: Sequence[str], limit: int) -> list[Row]:
        """The owner's newest live posts with a platform file id whose search text has
        every one of `words` (lower-case)."""
        where = "".join(" AND p.search_text LIKE ? ESCAPE '\\'" for _ in words)
        return await self.tx.fetchall(
            f"{_POST_WITH_OWNER} WHERE p.owner_id = ? AND p.deleted_at IS NULL"
            f" AND p.file_id IS NOT NULL{where} ORDER BY p.created_at DESC, p.id DESC LIMIT ?",
            (owner_id, *(f"%{_like_escape(word)}%" for word in words), limit),
        )

    async def lock(self, post_id: int) -> Row | None:
        """The post's row, locked until the transaction ends (PostgreSQL; SQLite serialises)."""
        suffix = " FOR UPDATE" if self.postgres else ""
        return await self.tx.fetchone(f"SELECT * FROM posts WHERE id = ?{suffix}", (post_id,))

    async def mark_deleted(self, post_id: int, now: float) -> bool:
        """Take a post out of the feed, /top and inline results; True if it was live."""
        post = await self.lock(post_id)
        if post is None or post["deleted_at"] is not None:
            return False
        from_day = await LikeRows(self.tx, self._after_commit).hold_window(
            post["platform"], post["chat_id"]
        )
        await self.tx.execute(
            "UPDATE posts SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", (now, post_id)
        )
        # Its likes leave the creator's daily totals (self-likes were never in them).
        await self.tx.execute(
            "UPDATE creator_likes SET likes = likes - (SELECT COUNT(*) FROM post_likes AS l"
            " WHERE l.post_id = ? AND l.user_id <> ? AND l.day = creator_likes.day)"
            " WHERE platform = ? AND chat_id = ? AND owner_id = ?"
            " AND day IN (SELECT day FROM post_likes WHERE post_id = ?)",
            (post_id, post["owner_id"], post["platform"], post["chat_id"], post["owner_id"],
             post_id),
        )
        if from_day >= 0:
            await self.tx.execute(
                "UPDATE creator_window SET likes = likes - (SELECT COUNT(*) FROM post_likes AS l"
                " WHERE l.post_id = ? AND l.user_id <> ? AND l.day >= ?)"
                " WHERE platform = ? AND chat_id = ? AND owner_id = ?",
                (post_id, post["owner_id"], from_day, post["platform"], post["chat_id"],
                 post["owner_id"]),
            )
        return True

    async def forget_clips_before(self, cutoff: float) -> list[str]:
        """Clear the clip path of posts older than `cutoff`; the paths cleared."""
        found = await self.tx.fetchall(
            "UPDATE posts SET clip_path = NULL WHERE created_at < ? AND clip_path IS NOT NULL"
            " RETURNING clip_path AS old",
            (cutoff,),
        )
        return [str(row["old"]) for row in found if row["old"] is not None]


class LikeRows(_Store):
    """`post_likes`, with the post's counts and the creator's daily totals kept in step."""

    async def toggle(self, post_id: int, user_id: int, *, now: float) -> tuple[bool, int] | None:
        """Like the post, or take the like back; (liked, likes) or None for no live post."""
        post = await PostRows(self.tx, self._after_commit).lock(post_id)
        if post is None or post["deleted_at"] is not None:
            return None
        day = int(now // 86400)
        from_day = await self.hold_window(post["platform"], post["chat_id"])
        added = await self.tx.fetchall(
            "INSERT INTO post_likes (post_id, user_id, liked_at, day) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (post_id, user_id) DO NOTHING RETURNING day",
            (post_id, user_id, now, day),
        )
        if added:
            step = 1
        else:
            removed = await self.tx.fetchall(
                "DELETE FROM post_likes WHERE post_id = ? AND user_id = ? RETURNING day",
                (post_id, user_id),
            )
            if not removed:  # pragma: no cover - the post's lock orders presses
                raise RuntimeError("a like vanished under the post's lock")
            step, day = -1, int(removed[0]["day"])
        counted = int(user_id != post["owner_id"])
        likes = await self.tx.fetchval(
            "UPDATE posts SET likes = likes + ?, score = score + ? WHERE id = ? RETURNING likes",
            (step, step * counted, post_id),
        )
        if counted:
            await self.tx.execute(
                "INSERT INTO creator_likes (platform, chat_id, day, owner_id, likes)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, chat_id, day, owner_id)"
                " DO UPDATE SET likes = creator_likes.likes + excluded.likes",
                (post["platform"], post["chat_id"], day, post["owner_id"], step),
            )
            if 0 <= from_day <= day:
                await self.tx.execute(
                    "INSERT INTO creator_window (platform, chat_id, owner_id, likes)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (platform, chat_id, owner_id)"
                    " DO UPDATE SET likes = creator_window.likes + excluded.likes",
                    (post["platform"], post["chat_id"], post["owner_id"], step),
                )
        return bool(added), int(likes)

    async def hold_window(self, platform: str, chat_id: str) -> int:
        """The chat's /top window start (-1: not built), held (PostgreSQL: FOR SHARE) so no
        rebuild runs until this transaction ends; likes on days from it go in the window."""
        await self.tx.execute(
            "INSERT INTO chat_windows (platform, chat_id, from_day) VALUES (?, ?, -1)"
            " ON CONFLICT (platform, chat_id) DO NOTHING",
            (platform, chat_id),
        )
        suffix = " FOR SHARE" if self.postgres else ""
        return int(await self.tx.fetchval(
            f"SELECT from_day FROM chat_windows WHERE platform = ? AND chat_id = ?{suffix}",
            (platform, chat_id),
        ))

    async def has_liked(self, post_id: int, user_id: int) -> bool:
        return await self.tx.fetchone(
            "SELECT 1 AS yes FROM post_likes WHERE post_id = ? AND user_id = ?", (post_id, user_id)
        ) is not None

    async def top_creators(
        self, platform: str, chat_id: str, *, since_day: int, limit: int
    ) -> list[Row] | None:
        """A chat's creators by likes received from others since `since_day` (live posts),
        or None when the chat's window starts on another day (`rebuild_window` first)."""
        from_day = await self.tx.fetchval(
            "SELECT from_day FROM chat_windows WHERE platform = ? AND chat_id = ?",
            (platform, chat_id),
        )
        if from_day is None or int(from_day) != since_day:
            return None
        return await self.tx.fetchall(
            "SELECT w.owner_id, w.likes, u.username AS owner_username,"
            " u.display_name AS owner_display_name, u.platform_user_id AS owner_platform_user_id"
            " FROM creator_window AS w JOIN users AS u ON u.id = w.owner_id"
            " WHERE w.platform = ? AND w.chat_id = ? AND w.likes > 0"
            " ORDER BY w.likes DESC, w.owner_id LIMIT ?",
            (platform, chat_id, limit),
        )

    async def rebuild_window(self, platform: str, chat_id: str, since_day: int) -> None:
        """Sum the chat's daily creator totals from `since_day` into its /top window."""
        await self.tx.execute(
            "INSERT INTO chat_windows (platform, chat_id, from_day) VALUES (?, ?, -1)"
            " ON CONFLICT (platform, chat_id) DO NOTHING",
            (platform, chat_id),
        )
        suffix = " FOR UPDATE" if self.postgres else ""
        from_day = await self.tx.fetchval(
            f"SELECT from_day FROM chat_windows WHERE platform = ? AND chat_id = ?{suffix}",
            (platform, chat_id),
        )
        if int(from_day) == since_day:
            return  # another instance just built it
        await self.tx.execute(
            "DELETE FROM creator_window WHERE platform = ? AND chat_id = ?", (platform, chat_id)
        )
        await self.tx.execute(
            "INSERT INTO creator_window (platform, chat_id, owner_id, likes)"
            " SELECT platform, chat_id, owner_id, SUM(likes) FROM creator_likes"
            " WHERE platform = ? AND chat_id = ? AND day >= ?"
            " GROUP BY platform, chat_id, owner_id HAVING SUM(likes) > 0",
            (platform, chat_id, since_day),
        )
        await self.tx.execute(
            "UPDATE chat_windows SET from_day = ? WHERE platform = ? AND chat_id = ?",
            (since_day, platform, chat_id),
        )

    async def recount(self) -> None:
        """Rebuild every post's counts and the creators' daily totals from the likes."""
        await self.tx.execute("UPDATE posts SET likes = 0, score = 0")
        await self.tx.execute(
            "UPDATE posts SET likes = c.likes, score = c.score FROM (SELECT l.post_id,"
            " COUNT(*) AS likes, SUM(CASE WHEN l.user_id <> p.owner_id THEN 1 ELSE 0 END)"
            " AS score FROM post_likes AS l JOIN posts AS p ON p.id = l.post_id"
            " GROUP BY l.post_id) AS c WHERE posts.id = c.post_id"
        )
        await self.tx.execute("DELETE FROM creator_likes")
        await self.tx.execute("DELETE FROM creator_window")
        await self.tx.execute("DELETE FROM chat_windows")
        await self.tx.execute(
            "INSERT INTO creator_likes (platform, chat_id, day, owner_id, likes)"
            " SELECT p.platform, p.chat_id, l.day, p.owner_id, COUNT(*) FROM post_likes AS l"
            " JOIN posts AS p ON p.id = l.post_id"
            " WHERE l.user_id <> p.owner_id AND p.deleted_at IS NULL"
            " GROUP BY p.platform, p.chat_id, l.day, p.owner_id"
        )
        # Fresh statistics, so the planner reads the feed from its index.
        for table in ("posts", "post_likes", "creator_likes", "users"):
            await self.tx.execute(f"ANALYZE {table}")


class BulkRows(_Store):
    """Bulk loading for benches and imports: many rows in a few statements."""

    # Loadable columns and their PostgreSQL types (rows go there as one array per column).
    TABLES: dict[str, dict[str, str]] = {
        "users": {
            "platform": "text", "platform_user_id": "text", "display_name": "text",
            "username": "text", "created_at": "double precision", "seen_at": "double precision",
        },
        "posts": {
            "job_id": "text", "platform": "text", "chat_id": "text", "owner_id": "bigint",
            "created_at": "double precision", "source_post_id": "bigint", "generation": "integer",
            "clip_path": "text", "file_id": "text", "message_id": "text", "search_text": "text",
            "deleted_at": "double precision",
        },
        "post_likes": {
            "post_id": "bigint", "user_id": "bigint", "liked_at": "double precision",
            "day": "integer",
        },
    }

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        types = self.TABLES.get(table, {})
        if not columns or set(columns) - set(types):
            raise ValueError(f"cannot bulk load {table} ({', '.join(columns)})")
        if not self.postgres:
            await _insert_many(self.tx, table, columns, rows)
            return
        arrays = ", ".join(f"CAST(? AS {types[column]}[])" for column in columns)
        for start in range(0, len(rows), 100_000):
            chunk = rows[start:start + 100_000]
            await self.tx.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})",
                tuple([row[i] for row in chunk] for i in range(len(columns))),
            )

    async def settle(self) -> None:
        """After a bulk load, in a read unit (outside a transaction): PostgreSQL's VACUUM
        marks the new pages all-visible, so the feed reads its index alone."""
        if self.postgres:
            for table in ("posts", "post_likes", "creator_likes", "creator_window"):
                await self.tx.execute(f"VACUUM (ANALYZE) {table}")

    async def ids(self, table: str, key: str) -> dict[str, int]:
        """`key` → id of every row of a bulk-loaded table (users: platform_user_id)."""
        if key not in self.TABLES.get(table, {}):
            raise ValueError(f"not a bulk key: {table}.{key}")
        found = await self.tx.fetchall(f"SELECT id, {key} AS k FROM {table}")
        return {str(row["k"]): int(row["id"]) for row in found}


async def _insert_many(
    tx: Executor, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    # Well under both stores' limits on parameters per statement (SQLite 32,766).
    per = max(1, 30_000 // len(columns))
    one = f"({_marks(columns)})"
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        await tx.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(chunk))}",
            tuple(value for row in chunk for value in row),
        )


class WebPageRows(_Store):
    """The web studio's stored pages (`web_messages`, one revision counter per browser)
    and the media each page may show (`web_media`, by opaque id)."""

    async def _serialise(self, chat: str) -> None:
        # SQLite already serialises writers; PostgreSQL takes a per-page lock so two
        # writes never share a revision (a live page would miss one).
        if self.postgres:
            await self.tx.fetchall("SELECT pg_advisory_xact_lock(hashtext(?))", (f"web:{chat}",))

    async def add(self, chat: str, body: str, *, mine: bool, delivery: str | None, now: float) -> int:
        """A new message; a repeated `delivery` key returns the first message's id."""
        await self._serialise(chat)
        if delivery is not None:
            found = await self.tx.fetchval(
                "SELECT id FROM web_messages WHERE delivery = ?", (delivery,))
            if found is not None:
                return int(found)
        rows = await self.tx.fetchall(
            "INSERT INTO web_messages (chat_id, rev, mine, body, delivery, created_at) VALUES"
            " (?, (SELECT COALESCE(MAX(rev), 0) + 1 FROM web_messages WHERE chat_id = ?),"
            " ?, ?, ?, ?) RETURNING id",
            (chat, chat, int(mine), body, delivery, now),
        )
        return int(rows[0]["id"])

    async def body(self, chat: str, message_id: int) -> str | None:
        value = await self.tx.fetchval(
            "SELECT body FROM web_messages WHERE id = ? AND chat_id = ?", (message_id, chat))
        return None if value is None else str(value)

    async def rewrite(self, chat: str, message_id: int, body: str) -> bool:
        """Replace one of the page's messages (an edit in place) under a new revision."""
        await self._serialise(chat)
        return await self.tx.execute(
            "UPDATE web_messages SET body = ?, rev = (SELECT MAX(rev) + 1 FROM web_messages"
            " WHERE chat_id = ?) WHERE id = ? AND chat_id = ?",
            (body, chat, message_id, chat),
        ) > 0

    async def since(self, chat: str, rev: int, limit: int) -> list[Row]:
        """The page's latest `limit` messages written after revision `rev`, newest first."""
        return await self.tx.fetchall(
            "SELECT id, rev, mine, body FROM web_messages WHERE chat_id = ? AND rev > ?"
            " ORDER BY rev DESC LIMIT ?", (chat, rev, limit),
        )

    async def share(self, media_id: str, chat: str, path: str, now: float) -> None:
        await self.tx.execute(
            "INSERT INTO web_media (id, chat_id, path, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING", (media_id, chat, path, now),
        )

    async def media_path(self, chat: str, media_id: str) -> str | None:
        value = await self.tx.fetchval(
            "SELECT path FROM web_media WHERE id = ? AND chat_id = ?", (media_id, chat))
        return None if value is None else str(value)

    async def forget_before(self, cutoff: float) -> None:
        await self.tx.execute("DELETE FROM web_messages WHERE created_at < ?", (cutoff,))
        await self.tx.execute("DELETE FROM web_media WHERE created_at < ?", (cutoff,))
