"""Jobs on procrastinate, when `DATABASE_URL` is PostgreSQL: any number of instances share
one queue, and any worker runs (and delivers) any job.

- `submit` defers one *token* per job, in the transaction that stores and charges it.
- A token is one procrastinate job of the task `lokiz.run_job`. When a worker runs it, it
  asks the database for work (`Admission`): first a started job nobody holds (its
  instance died, or handed it back), else — while fewer than `MAX_CONCURRENT_JOBS` jobs
  generate in the whole deployment — the queued job first in the fair order
  (round-robin across users). It then runs the engine's idempotent step on that job.
  Tokens are interchangeable, so one that runs twice (procrastinate runs a job at least
  once) finds the job held or ended and does nothing more: charged once, one
  prediction, one delivery.
- `lokiz.requeue_stalled` runs every 5 s (`queueing_lock` only: with `lock` it can stall
  itself) and re-queues the tokens of workers whose heartbeat stopped; then it gives a
  new token to every unheld unfinished job no free token will pick up (a token that
  found nothing while a dead instance's claim still stood has ended).
- A worker told to stop waits `DRAIN_SECONDS` for its steps, then cancels them; each
  cancelled token defers a new one, so the job it held goes to another worker.
- A Replicate webhook may land on any instance: it records the outcome in the job row
  and NOTIFYs `lokiz_webhooks`; the instance whose step waits for it reads it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Status
from procrastinate.worker import Worker

from core.backends.base import Prediction
from core.engine.outcomes import Stopped
from core.jobs import JobStore
from core.storage import UnitOfWork
from core.storage.postgres import PostgresDatabase

if TYPE_CHECKING:
    from core.engine.engine import JobEngine

log = logging.getLogger(__name__)

RUN_TASK = "lokiz.run_job"
STALLED_TASK = "lokiz.requeue_stalled"
STALLED_CRON = "* * * * * */5"  # every 5 s (the sixth field is seconds)
HEARTBEAT_SECONDS = 2.0  # a worker's heartbeat …
STALLED_AFTER = 6.0  # … and how long without one before its tokens are re-queued
CLUSTER_CLAIM_LEASE = 10.0  # a dead instance's jobs are free to take after this
ADMISSION_POLL = 1.0  # a full deployment is asked again this often (once per process)
ADMISSION_LOCK = 0x4C4F4B4951  # pg_advisory_xact_lock key of admissions ("LOKIQ")
RESUME_PRIORITY = 100  # re-queued tokens go before new ones
WEBHOOK_CHANNEL = "lokiz_webhooks"
SLOTS_CHANNEL = "lokiz_slots"  # a job left generation somewhere: waiting tokens ask again
RETRY_SECONDS = 5  # a job stopped to be retried gets a new token this much later


class Admission:
    """Hands this process's tokens their jobs, asking the database at most once per wake
    while the deployment is full (not once per waiting token)."""

    def __init__(
        self, jobs: JobStore, *, owner: str, lease: float, ceiling: int,
        platforms: Callable[[], list[str]], poll: float = ADMISSION_POLL,
    ) -> None:
        self.jobs = jobs
        self.owner = owner
        self.lease = lease
        self.ceiling = ceiling
        self._platforms = platforms
        self.poll = poll
        self._lock = asyncio.Lock()
        self._generation = 0
        self._full_at = -1  # the generation found full
        self._changed = asyncio.Event()
        self.waiting = 0

    def wake(self) -> None:
        """Something may have freed a slot: waiting tokens ask again."""
        self._generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def next(self) -> str | None:
        """The id of a job now held by this instance, or None when there is none to run."""
        self.waiting += 1
        try:
            while True:
                seen = self._generation
                if self._full_at != seen:
                    async with self._lock:
                        if self._full_at != self._generation:
                            seen = self._generation
                            kind, job_id = await self.jobs.admit(
                                self.owner, self.lease, self.ceiling, self._platforms() or ["-"],
                                lock_key=ADMISSION_LOCK,
                            )
                            if kind == "job":
                                return job_id
                            if kind == "empty":
                                return None
                            self._full_at = seen
                changed = self._changed
                if self._generation != seen:
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), self.poll)
                except TimeoutError:
                    if self._generation == seen:
                        self.wake()
        finally:
            self.waiting -= 1


class ClusterQueue:
    """The engine's jobs on procrastinate (see the module docstring)."""

    def __init__(
        self,
        engine: JobEngine,
        db: PostgresDatabase,
        *,
        concurrency: int,
        drain_seconds: float,
        ceiling: int,
        stalled_after: float = STALLED_AFTER,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.engine = engine
        self.db = db
        self.concurrency = concurrency
        self.drain_seconds = drain_seconds
        self.stalled_after = stalled_after
        self.heartbeat = heartbeat
        self.app = App(connector=PsycopgConnector(conninfo=db.url, min_size=1, max_size=10))
        self.admission = Admission(
            engine.jobs, owner=engine.instance_id, lease=engine.claim_lease, ceiling=ceiling,
            platforms=lambda: sorted(engine.notifiers),
        )
        self.run_task = self.app.task(name=RUN_TASK)(self._run_token)
        requeue = self.app.task(name=STALLED_TASK, queueing_lock=STALLED_TASK)(self._requeue_stalled)
        self.app.periodic(cron=STALLED_CRON)(requeue)
        self._opened = False
        self._worker: asyncio.Task[None] | None = None
        self._procrastinate: Worker | None = None
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle -------------------------------------------------------------------
    async def open(self) -> None:
        if not self._opened:
            await self.app.open_async()
            self._opened = True

    async def close(self) -> None:
        await self.stop_worker(grace=0)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        if self._opened:
            await self.app.close_async()
            self._opened = False

    def listen_webhooks(self) -> None:
        """Wake this instance's waiting steps when a webhook lands on another instance."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="webhook-listener")

    async def start_worker(self) -> None:
        """Run job tokens here (the `worker` role), after giving every unfinished job
        nobody holds a token (jobs left by an older version, or by a lost hand-back)."""
        await self.open()
        await self.ensure_tokens()
        self.listen_webhooks()
        self._procrastinate = Worker(
            self.app, concurrency=self.concurrency, name=self.engine.instance_id, wait=True,
            shutdown_graceful_timeout=self.drain_seconds, install_signal_handlers=False,
            update_heartbeat_interval=self.heartbeat, stalled_worker_timeout=self.stalled_after,
            listen_notify=True, delete_jobs="successful",
        )
        run = self._procrastinate.run()  # type: ignore[no-untyped-call]
        self._worker = asyncio.create_task(run, name="job-worker")

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def stop_worker(self, grace: float | None = None) -> None:
        """Stop fetching tokens; wait up to `grace` seconds (default `drain_seconds`) for
        running steps, then cancel them (each hands its job back)."""
        worker, self._worker = self._worker, None
        if worker is None or self._procrastinate is None:
            return
        self._procrastinate.shutdown_graceful_timeout = self.drain_seconds if grace is None else grace
        self._procrastinate.stop()  # type: ignore[no-untyped-call]
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker

    # --- deferring -------------------------------------------------------------------
    async def defer(self, uow: UnitOfWork, job_id: str) -> None:
        """Queue the job's token inside `uow`'s transaction (it commits with the job)."""
        connection = getattr(uow, "connection")  # noqa: B009 (PostgreSQL units only)
        await self.run_task.configure(connection=connection).defer_async(job_id=job_id)

    async def _defer_new(self, job_id: str, *, later: float = 0.0) -> None:
        await self.open()
        task = self.run_task.configure(priority=RESUME_PRIORITY)
        if later:
            task = self.run_task.configure(priority=RESUME_PRIORITY, schedule_in={"seconds": int(later)})
        await task.defer_async(job_id=job_id)

    async def ensure_tokens(self) -> int:
        """Defer a token for each unfinished job nobody holds and no free token will pick up.

        Runs at start-up and with every stalled check: a token can end with nothing to do
        while a dead instance's claim still stands (its jobs free up only when the claim's
        lease runs out), and the jobs it would have taken must not wait for a restart."""
        missing = await self.engine.jobs.tokens_missing(RUN_TASK)
        for _ in range(max(0, missing)):
            await self._defer_new("")
        if missing > 0:
            log.info("job queue: %d tokens added for unfinished jobs", missing)
        return max(0, missing)

    # --- the tasks -------------------------------------------------------------------
    async def _run_token(self, job_id: str) -> None:
        """One token: run one job the database hands this instance, if any."""
        picked: str | None = None
        try:
            picked = await self.admission.next()
            if picked is None:
                return
            self._in_background(self.engine.show_positions())
            outcome = await self.engine.run_job(picked)
            if isinstance(outcome, Stopped) and outcome.retry:
                log.info("job %s: %s; asking again in %ds", picked, outcome.why, RETRY_SECONDS)
                await self._defer_new(picked, later=RETRY_SECONDS)
        except asyncio.CancelledError:
            # Stopping (drain) or aborted: the job goes back to the queue with a new token.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._defer_new(picked or job_id))
            raise
        finally:
            if picked is not None:  # a job held here but never generated frees its slot now
                self.admission.wake()

    async def _requeue_stalled(self, timestamp: int) -> None:
        """Tokens of workers whose heartbeat stopped go back to the queue (procrastinate
        does not retry them itself)."""
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        for job in stalled:
            assert job.id is not None
            if job.task_name != RUN_TASK:  # a periodic run of this task: the next one comes anyway
                await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=True)
                continue
            with contextlib.suppress(AlreadyEnqueued):
                await manager.retry_job(job, priority=RESUME_PRIORITY)
            log.warning("job queue: token %s of a stalled worker re-queued", job.id)
        await self.ensure_tokens()

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # --- webhooks across instances ---------------------------------------------------
    async def publish_webhook(self, prediction: Prediction) -> bool:
        """Record a finished prediction on its job and wake its waiter wherever it runs."""
        return await self.engine.jobs.publish_webhook(prediction, WEBHOOK_CHANNEL)

    def slot_freed(self) -> None:
        """A job here left generation: wake the tokens waiting here at once, and those of
        other instances by NOTIFY (they would otherwise ask within ADMISSION_POLL)."""
        self.admission.wake()
        if self._listener is not None:
            self._in_background(self.engine.jobs.announce(SLOTS_CHANNEL))

    async def _listen(self) -> None:
        while True:
            try:
                async for channel, payload in self.db.listen(WEBHOOK_CHANNEL, SLOTS_CHANNEL):
                    if channel == SLOTS_CHANNEL:
                        if self.admission.waiting:
                            self.admission.wake()
                        continue
                    prediction_id = payload
                    if not self.engine.inbox.watched(prediction_id):
                        continue
                    found = await self.engine.jobs.stored_webhook(prediction_id)
                    if found is not None:
                        self.engine.inbox.post(found)
            except asyncio.CancelledError:
                raise
            except Exception:  # the runner's polling covers the gap
                log.warning("webhook listener lost its connection; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a background step of the job queue failed: %s", task.exception())
