"""Jobs as stored: the persisted state machine of SPEC §5.

queued → running (prediction id stored) → succeeded → delivered, or
failed | canceled | timed_out — each of those refunded exactly once, in the
same transaction that records it. Every transition is a compare-and-set on
the current status, so a late poll, a duplicate webhook or a second cancel
changes nothing.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from core.catalogue import JobRequest
from core.credits import CreditLedger
from core.ids import short_id
from core.storage import Database, Transaction

QUEUED, RUNNING, SUCCEEDED, DELIVERED = "queued", "running", "succeeded", "delivered"
FAILED, CANCELED, TIMED_OUT = "failed", "canceled", "timed_out"
ACTIVE = (QUEUED, RUNNING)
UNFINISHED = (QUEUED, RUNNING, SUCCEEDED)
REFUNDED_STATES = (FAILED, CANCELED, TIMED_OUT)
STATES = (QUEUED, RUNNING, SUCCEEDED, DELIVERED, FAILED, CANCELED, TIMED_OUT)

# Why a job did not finish; each has a catalogue text `job.reason.<class>`.
REJECTED = "rejected"  # the model refused the input
MODEL_ERROR = "model_error"
TIMEOUT = "timed_out"
CANCELED_BY_USER = "canceled"
ABORTED = "aborted"
MISSING_OUTPUT = "missing_output"
UNDELIVERABLE = "undeliverable"

def new_job_id() -> str:
    return short_id(10)


@dataclass(frozen=True)
class Job:
    id: str
    user_id: int
    platform: str
    chat_id: str
    language: str
    session_id: str | None
    reply_to_message_id: str | None
    status_message_id: str | None
    action: str
    model: str
    backend: str
    request: JobRequest
    prepared_inputs: dict[str, Any] | None
    prediction_id: str | None
    price: int
    status: str
    error_class: str | None
    error_detail: str | None
    output_path: str | None
    delivered_message_id: str | None
    delivered_file_id: str | None
    delivery_attempts: int
    likes: int
    created_at: float
    started_at: float | None
    deadline_at: float | None
    finished_at: float | None
    delivery_sends: int = 0  # sends that may have reached the chat (recorded before each)
    delivery_unconfirmed: bool = False  # delivered, but the platform never confirmed it

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        values["request"] = JobRequest.from_json(json.loads(row["request"]))
        values["delivery_unconfirmed"] = bool(row.get("delivery_unconfirmed") or 0)
        values["prepared_inputs"] = (
            json.loads(row["prepared_inputs"]) if row["prepared_inputs"] else None
        )
        return cls(**values)

    @property
    def refunded(self) -> bool:
        return self.status in REFUNDED_STATES


class JobStore:
    """Reads and compare-and-set transitions of stored jobs."""

    def __init__(self, db: Database, ledger: CreditLedger) -> None:
        self.db = db
        self.ledger = ledger

    async def insert(self, tx: Transaction, job: Job) -> None:
        await tx.execute(
            "INSERT INTO jobs (id, user_id, platform, chat_id, language, session_id,"
            " reply_to_message_id, status_message_id, action, model, backend, request, price,"
            " status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id, job.user_id, job.platform, job.chat_id, job.language, job.session_id,
                job.reply_to_message_id, job.status_message_id, job.action, job.model,
                job.backend, json.dumps(job.request.to_json()), job.price, job.status,
                job.created_at, job.created_at,
            ),
        )

    async def get(self, job_id: str) -> Job | None:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else Job.from_row(row)

    async def with_status(self, *statuses: str) -> list[Job]:
        marks = ", ".join("?" for _ in statuses)
        async with self.db.read() as tx:
            found = await tx.fetchall(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at", statuses
            )
        return [Job.from_row(row) for row in found]

    async def by_prediction(self, prediction_id: str) -> Job | None:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM jobs WHERE prediction_id = ?", (prediction_id,))
        return None if row is None else Job.from_row(row)

    async def for_user(self, user_id: int, limit: int = 10) -> list[Job]:
        async with self.db.read() as tx:
            found = await tx.fetchall(
                "SELECT * FROM jobs WHERE user_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (user_id, limit),
            )
        return [Job.from_row(row) for row in found]

    async def active_count(self, tx: Transaction, user_id: int) -> int:
        return int(
            await tx.fetchval(
                "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ('queued', 'running')",
                (user_id,),
            )
        )

    async def counts_by_status(self) -> dict[str, int]:
        async with self.db.read() as tx:
            found = await tx.fetchall("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        counts = dict.fromkeys(STATES, 0)
        counts.update({row["status"]: row["n"] for row in found})
        return counts

    async def recent_run_seconds(self, model: str, limit: int = 20) -> float | None:
        """Median generation time of the last finished jobs of `model` (for estimates)."""
        async with self.db.read() as tx:
            found = await tx.fetchall(
                "SELECT finished_at - started_at AS seconds FROM jobs WHERE model = ?"
                " AND status IN ('succeeded', 'delivered') AND started_at IS NOT NULL"
                " AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?",
                (model, limit),
            )
        values = [row["seconds"] for row in found if row["seconds"] is not None]
        return statistics.median(values) if values else None

    # --- transitions (compare-and-set on status) -------------------------------------
    async def _update(
        self, job_id: str, sets: str, params: tuple[Any, ...], allowed: tuple[str, ...],
        *, extra: str = "1 = 1",
    ) -> bool:
        marks = ", ".join("?" for _ in allowed)
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                f"UPDATE jobs SET {sets}, updated_at = ? WHERE id = ? AND status IN ({marks})"
                f" AND {extra}",
                (*params, time.time(), job_id, *allowed),
            )
        return bool(changed > 0)

    async def set_status_message(self, job_id: str, message_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET status_message_id = ?, updated_at = ? WHERE id = ?",
                (message_id, time.time(), job_id),
            )

    async def set_prepared(self, job_id: str, inputs: dict[str, Any]) -> bool:
        return await self._update(
            job_id, "prepared_inputs = ?", (json.dumps(inputs),), (QUEUED, RUNNING)
        )

    async def set_running(self, job_id: str, prediction_id: str, deadline_at: float) -> bool:
        """Store the prediction id before any waiting (a restart re-attaches by it)."""
        now = time.time()
        return await self._update(
            job_id,
            "status = 'running', prediction_id = ?, started_at = COALESCE(started_at, ?),"
            " deadline_at = COALESCE(deadline_at, ?)",
            (prediction_id, now, deadline_at),
            (QUEUED, RUNNING),
        )

    async def forget_prediction(self, job_id: str) -> bool:
        """The backend lost the prediction (local work cut by a restart): start over."""
        return await self._update(job_id, "prediction_id = NULL", (), (RUNNING,))

    async def set_succeeded(self, job_id: str, output_path: str) -> bool:
        return await self._update(
            job_id,
            "status = 'succeeded', output_path = ?, finished_at = ?",
            (output_path, time.time()),
            (RUNNING,),
        )

    async def count_delivery_attempt(self, job_id: str) -> None:
        await self._update(job_id, "delivery_attempts = delivery_attempts + 1", (), (SUCCEEDED,))

    async def mark_sending(self, job_id: str) -> bool:
        """Record a send before making it: from now on the job may have been delivered."""
        return await self._update(job_id, "delivery_sends = delivery_sends + 1", (), (SUCCEEDED,))

    async def unmark_sending(self, job_id: str) -> None:
        """The send just recorded certainly did not reach the chat."""
        await self._update(
            job_id, "delivery_sends = delivery_sends - 1", (), (SUCCEEDED,), extra="delivery_sends > 0"
        )

    async def set_delivered(
        self, job_id: str, message_id: str | None, file_id: str | None, *, unconfirmed: bool = False
    ) -> bool:
        return await self._update(
            job_id,
            "status = 'delivered', delivered_message_id = ?, delivered_file_id = ?,"
            " delivery_unconfirmed = ?",
            (message_id, file_id, int(unconfirmed)),
            (SUCCEEDED,),
        )

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE jobs SET delivered_file_id = ? WHERE id = ?", (file_id, job_id)
            )

    async def finish_unsuccessfully(
        self,
        job_id: str,
        status: str,
        error_class: str,
        detail: str = "",
        *,
        only_from: tuple[str, ...] = UNFINISHED,
    ) -> int | None:
        """Mark failed / canceled / timed_out and refund, in one transaction.

        Returns the credits refunded, or None when the job had already ended
        (so the caller says nothing twice) or a send of it may have reached the chat
        (a job that may have been delivered is never refunded).
        """
        assert status in REFUNDED_STATES
        now = time.time()
        marks = ", ".join("?" for _ in only_from)
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE jobs SET status = ?, error_class = ?, error_detail = ?, finished_at = ?,"
                f" updated_at = ? WHERE id = ? AND status IN ({marks}) AND delivery_sends = 0",
                (status, error_class, detail[:500], now, now, job_id, *only_from),
            )
            if not changed:
                return None
            entry = await self.ledger.refund(tx, job_id, reason=error_class)
        return entry.delta if entry else 0

    async def like(self, job_id: str, user_id: int) -> int:
        """Count one 👍 per user; return the total."""
        async with self.db.transaction() as tx:
            added = await tx.fetchall(
                "INSERT INTO job_likes (job_id, user_id) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING RETURNING job_id",
                (job_id, user_id),
            )
            if added:
                await tx.execute("UPDATE jobs SET likes = likes + 1 WHERE id = ?", (job_id,))
            return int(await tx.fetchval("SELECT likes FROM jobs WHERE id = ?", (job_id,)) or 0)
