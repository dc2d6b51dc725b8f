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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.backends.base import Prediction, StartRecord
from core.catalogue import JobRequest
from core.credits import CreditLedger
from core.ids import short_id
from core.storage import Database, Transaction


class JobStatus(StrEnum):
    """Where a stored job is in its life (a str: it compares equal to the stored text)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # the output is downloaded, not yet delivered
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"


class EndReason(StrEnum):
    """Why a job did not finish; each has a catalogue text `job.reason.<value>`."""

    REJECTED = "rejected"  # the model refused the input
    MODEL_ERROR = "model_error"
    TIMEOUT = "timed_out"
    CANCELED_BY_USER = "canceled"
    ABORTED = "aborted"
    MISSING_OUTPUT = "missing_output"
    UNDELIVERABLE = "undeliverable"


# Short names kept for the modules that read statuses (the Desk, the account screens).
QUEUED, RUNNING, SUCCEEDED = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED
DELIVERED, FAILED = JobStatus.DELIVERED, JobStatus.FAILED
CANCELED, TIMED_OUT = JobStatus.CANCELED, JobStatus.TIMED_OUT
ACTIVE = (QUEUED, RUNNING)
UNFINISHED = (QUEUED, RUNNING, SUCCEEDED)
REFUNDED_STATES = (FAILED, CANCELED, TIMED_OUT)
STATES = tuple(JobStatus)

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
    status: JobStatus
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
    owner_id: str | None = None  # the owner's platform user id (mentioned in groups)
    owner_name: str | None = None  # how the chat names them, settled at submit

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        values = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        values["request"] = JobRequest.from_json(json.loads(row["request"]))
        values["status"] = JobStatus(row["status"])
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
        await tx.jobs.insert({
            "id": job.id, "user_id": job.user_id, "platform": job.platform,
            "chat_id": job.chat_id, "language": job.language, "session_id": job.session_id,
            "reply_to_message_id": job.reply_to_message_id,
            "status_message_id": job.status_message_id, "action": job.action,
            "model": job.model, "backend": job.backend,
            "request": json.dumps(job.request.to_json()), "price": job.price,
            "status": job.status, "created_at": job.created_at, "updated_at": job.created_at,
            "owner_id": job.owner_id, "owner_name": job.owner_name,
        })

    async def get(self, job_id: str) -> Job | None:
        async with self.db.read() as tx:
            row = await tx.jobs.get(job_id)
        return None if row is None else Job.from_row(row)

    async def with_status(self, *statuses: str) -> list[Job]:
        async with self.db.read() as tx:
            found = await tx.jobs.with_status(statuses)
        return [Job.from_row(row) for row in found]

    async def by_prediction(self, prediction_id: str) -> Job | None:
        async with self.db.read() as tx:
            row = await tx.jobs.by_prediction(prediction_id)
        return None if row is None else Job.from_row(row)

    async def for_user(self, user_id: int, limit: int = 10) -> list[Job]:
        async with self.db.read() as tx:
            found = await tx.jobs.for_user(user_id, limit)
        return [Job.from_row(row) for row in found]

    async def active_count(self, tx: Transaction, user_id: int) -> int:
        """The user's queued and running jobs, counted under their row lock (see the store)."""
        return await tx.jobs.active_count(user_id, ACTIVE)

    async def counts_by_status(self) -> dict[str, int]:
        async with self.db.read() as tx:
            found = await tx.jobs.counts_by_status()
        counts = {str(status): 0 for status in STATES}
        counts.update(found)
        return counts

    async def recent_run_seconds(self, model: str, limit: int = 20) -> float | None:
        """Median generation time of the last finished jobs of `model` (for estimates)."""
        async with self.db.read() as tx:
            values = await tx.jobs.recent_run_seconds(model, (SUCCEEDED, DELIVERED), limit)
        return statistics.median(values) if values else None

    # --- transitions (compare-and-set on status) -------------------------------------
    async def _update(self, job_id: str, allowed: tuple[str, ...] | None, **changes: Any) -> bool:
        async with self.db.transaction() as tx:
            return await tx.jobs.transition(job_id, allowed=allowed, now=time.time(), **changes)

    async def set_status_message(self, job_id: str, message_id: str) -> None:
        await self._update(job_id, None, status_message_id=message_id)

    # --- the backend port's start log (see core.backends.base.StartLog) ------------
    async def start_record(self, job_id: str) -> StartRecord | None:
        """What the backend port knows of the job's prediction; None once the job ended."""
        async with self.db.read() as tx:
            row = await tx.jobs.get(job_id)
        if row is None or row["status"] not in ACTIVE:
            return None
        inputs = json.loads(row["prepared_inputs"]) if row["prepared_inputs"] else None
        creating_since = row["creating_since"]
        if inputs is not None and creating_since is None:
            creating_since = row["created_at"]  # stored by an older version: it may have created
        return StartRecord(inputs, creating_since, row["prediction_id"])

    async def record_creating(self, job_id: str, inputs: dict[str, Any]) -> bool:
        """Before the create request: the prepared inputs, and from now on it may exist."""
        return await self._update(
            job_id, ACTIVE, prepared_inputs=json.dumps(inputs), creating_since=time.time()
        )

    async def record_created(self, job_id: str, prediction_id: str) -> bool:
        """The prediction id, stored as soon as it is known (status changes come later)."""
        return await self._update(job_id, ACTIVE, prediction_id=prediction_id)

    async def set_running(self, job_id: str, prediction_id: str, deadline_at: float) -> bool:
        """Store the prediction id before any waiting (a restart re-attaches by it)."""
        async with self.db.transaction() as tx:
            return await tx.jobs.set_running(
                job_id, prediction_id, deadline_at=deadline_at, allowed=(QUEUED, RUNNING),
                now=time.time(),
            )

    async def forget_prediction(self, job_id: str) -> bool:
        """The backend lost the prediction (local work cut by a restart): start over."""
        return await self._update(job_id, (RUNNING,), prediction_id=None)

    async def set_succeeded(self, job_id: str, output_path: str) -> bool:
        return await self._update(
            job_id, (RUNNING,), status=SUCCEEDED, output_path=output_path, finished_at=time.time()
        )

    # --- claims: one instance runs a job's step at a time ----------------------------
    async def claim(self, job_id: str, owner: str, lease: float) -> Job | None:
        """Take an unfinished job for `owner` for `lease` seconds, unless another instance
        holds a live claim; the job as claimed (read in the same statement), or None."""
        now = time.time()
        async with self.db.transaction() as tx:
            row = await tx.jobs.claim(
                job_id, owner=owner, until=now + lease, allowed=UNFINISHED, now=now
            )
        return None if row is None else Job.from_row(row)

    async def renew_claims(self, job_ids: list[str], owner: str, lease: float) -> set[str]:
        """Extend `owner`'s claims on `job_ids` by `lease` seconds; the ids still theirs
        (a missing one was taken over after its lease ran out)."""
        held: set[str] = set()
        until = time.time() + lease
        for start in range(0, len(job_ids), 500):  # bounded statements for any number of jobs
            async with self.db.transaction() as tx:
                held.update(
                    await tx.jobs.renew_claims(job_ids[start:start + 500], owner=owner, until=until)
                )
        return held

    async def release_claim(self, job_id: str, owner: str) -> None:
        async with self.db.transaction() as tx:
            await tx.jobs.release_claim(job_id, owner=owner)

    # --- the deployment-wide queue (PostgreSQL mode, see core.engine.cluster) ---------
    async def admit(
        self, owner: str, lease: float, ceiling: int, platforms: list[str], *, lock_key: int
    ) -> tuple[str, str | None]:
        """("job", id) now held by `owner`, ("full", None) or ("empty", None)."""
        now = time.time()
        async with self.db.transaction() as tx:
            return await tx.jobs.admit(owner=owner, until=now + lease, now=now, ceiling=ceiling,
                                       platforms=platforms, lock_key=lock_key)

    async def queue_position(self, job_id: str) -> int | None:
        async with self.db.read() as tx:
            return await tx.jobs.queue_position(job_id, now=time.time())

    async def waiting(self, limit: int) -> list[tuple[Job, int]]:
        """The first waiting jobs in the fair order, with their positions."""
        async with self.db.read() as tx:
            rows = await tx.jobs.waiting(now=time.time(), limit=limit)
        return [(Job.from_row(row), int(row["place"])) for row in rows]

    async def unheld_unfinished(self) -> int:
        async with self.db.read() as tx:
            return await tx.jobs.unheld_unfinished(now=time.time())

    async def tasks_pending(self, task_name: str) -> int:
        async with self.db.read() as tx:
            return await tx.jobs.tasks_pending(task_name)

    async def tokens_missing(self, task_name: str) -> int:
        """How many unfinished jobs no instance holds lack a token of `task_name` (PostgreSQL
        mode): the unheld jobs, less the tokens that hold no job (waiting to run, or asking
        for work); a token running a job is counted by the job it holds."""
        async with self.db.read() as tx:
            now = time.time()
            unheld = await tx.jobs.unheld_unfinished(now=now)
            held = await tx.jobs.held_unfinished(now=now)
            pending = await tx.jobs.tasks_pending(task_name)
        return unheld - max(0, pending - held)

    async def publish_webhook(self, prediction: Prediction, channel: str) -> bool:
        """Record a finished prediction on its active job and NOTIFY `channel` with its
        id (on commit); False when no active job has that prediction."""
        payload = json.dumps({"id": prediction.id, "status": prediction.status,
                              "output": prediction.output, "error": prediction.error})
        async with self.db.transaction() as tx:
            job_id = await tx.jobs.store_webhook(prediction.id, payload)
            if job_id is not None:
                await tx.jobs.notify(channel, prediction.id)
        return job_id is not None

    async def announce(self, channel: str, payload: str = "") -> None:
        """NOTIFY `channel` (PostgreSQL): other instances listening hear it."""
        async with self.db.transaction() as tx:
            await tx.jobs.notify(channel, payload)

    async def stored_webhook(self, prediction_id: str) -> Prediction | None:
        async with self.db.read() as tx:
            payload = await tx.jobs.stored_webhook(prediction_id)
        if not payload:
            return None
        data = json.loads(payload)
        return Prediction(id=data["id"], status=data["status"], output=data.get("output"),
                          error=data.get("error"))

    async def count_delivery_attempt(self, job_id: str) -> None:
        async with self.db.transaction() as tx:
            await tx.jobs.count_delivery_attempt(job_id, allowed=(SUCCEEDED,), now=time.time())

    async def mark_sending(self, job_id: str) -> bool:
        """Record a send before making it: from now on the job may have been delivered."""
        async with self.db.transaction() as tx:
            return await tx.jobs.count_send(job_id, 1, allowed=(SUCCEEDED,), now=time.time())

    async def unmark_sending(self, job_id: str) -> None:
        """The send just recorded certainly did not reach the chat."""
        async with self.db.transaction() as tx:
            await tx.jobs.count_send(job_id, -1, allowed=(SUCCEEDED,), now=time.time())

    async def set_delivered(
        self, job_id: str, message_id: str | None, file_id: str | None, *, unconfirmed: bool = False,
        also: Callable[[Transaction], Awaitable[Any]] | None = None,
    ) -> bool:
        """Mark delivered (once); `also` runs in the same transaction when it did (the post)."""
        async with self.db.transaction() as tx:
            done = await tx.jobs.transition(
                job_id, allowed=(SUCCEEDED,), now=time.time(), status=DELIVERED,
                delivered_message_id=message_id, delivered_file_id=file_id,
                delivery_unconfirmed=int(unconfirmed),
            )
            if done and also is not None:
                await also(tx)
            return done

    async def set_file_id(self, job_id: str, file_id: str) -> None:
        await self._update(job_id, None, delivered_file_id=file_id)

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
        async with self.db.transaction() as tx:
            changed = await tx.jobs.transition(
                job_id, allowed=only_from, now=now, unsent=True, status=status,
                error_class=error_class, error_detail=detail[:500], finished_at=now,
            )
            if not changed:
                return None
            entry = await self.ledger.refund(tx, job_id, reason=error_class)
        return entry.delta if entry else 0

    async def like(self, job_id: str, user_id: int) -> int:
        """Count one 👍 per user; return the total."""
        async with self.db.transaction() as tx:
            return await tx.jobs.like(job_id, user_id)
