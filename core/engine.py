"""The job engine: a request becomes a clip exactly once, whatever fails on the way.

- `submit` stores the job and charges for it in one transaction.
- A fair scheduler starts queued jobs round-robin across users, at most
  `max_concurrent` at once.
- A running job uploads its inputs (stored), creates the prediction (its id
  stored before any waiting), waits for it by webhook or polling under a
  deadline, downloads the output at once and delivers it through the chat's
  notifier. Any failure ends in exactly one refund, except that a job whose
  send may have reached the chat (recorded before each send) is never refunded:
  a lost answer is retried once, then the job counts as delivered (unconfirmed).
- `recover` at start re-queues, re-attaches and re-delivers what a crash left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import job_screens
from core.backends.base import (
    ABORTED,
    CANCELED,
    FAILED,
    SUCCEEDED,
    Backend,
    BackendError,
    JobGone,
    OutputMissing,
    Prediction,
    PredictionLost,
)
from core.catalogue import JobRequest, ModelSpec, TemplateCatalogue
from core.credits import CreditLedger
from core.errors import LokizError, TooManyActiveJobs
from core.jobs import (
    ABORTED as ABORTED_REASON,
)
from core.jobs import (
    CANCELED as JOB_CANCELED,
)
from core.jobs import (
    CANCELED_BY_USER,
    MISSING_OUTPUT,
    MODEL_ERROR,
    QUEUED,
    REJECTED,
    RUNNING,
    TIMEOUT,
    UNDELIVERABLE,
    Job,
    JobStore,
    new_job_id,
)
from core.jobs import (
    FAILED as JOB_FAILED,
)
from core.jobs import (
    SUCCEEDED as JOB_SUCCEEDED,
)
from core.jobs import (
    TIMED_OUT as JOB_TIMED_OUT,
)
from core.metrics import Histogram
from core.notify import MaybeDelivered, NotDelivered, Notifier, OutputMedia, RecipientGone
from core.screens import Screen

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1 << 30
STATUS_INTERVAL = 3.0  # at most one status edit per message per 3 s
DELIVERY_ATTEMPTS = 5
# Sends that may have reached the chat: a lost answer is retried at most once, then the
# job counts as delivered (unconfirmed) and is never refunded.
MAX_UNSURE_SENDS = 2
DELIVERY_TIMEOUT = 600.0  # a send that has not answered by then may still have arrived
POLLS_PER_SECOND = 20.0  # half of the Replicate backend's request budget
# Inputs a model refuses show up as failed predictions with these words.
_REJECTION_WORDS = ("invalid", "nsfw", "safety", "sensitive", "flagged", "rejected", "not allowed")

Fitter = Callable[[Path, int], Awaitable[OutputMedia]]


def crash_point(name: str) -> None:
    """Die like kill -9 here when a test armed this point (LOKIZ_CRASH_AT=after_send,...)."""
    armed = os.environ.get("LOKIZ_CRASH_AT")
    if armed and name in armed.split(","):
        log.warning("crash point %s armed: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


class JobNotFound(LokizError):
    key = "error.job_not_found"


class JobNotYours(LokizError):
    key = "error.job_not_yours"


class JobNotCancelable(LokizError):
    key = "error.job_not_cancelable"


class _JobEnded(Exception):
    """Internal: the job ended (refunded) while running; stop quietly."""


@dataclass
class EngineStats:
    """Counters for /metrics, kept in memory (the database holds the truth)."""

    durations: dict[str, Histogram] = field(default_factory=dict)
    backend_requests: int = 0
    webhooks_accepted: int = 0
    webhooks_ignored: int = 0
    webhooks_rejected: int = 0


class StatusPacer:
    """Keeps status edits to one per `interval` per job; the last word always lands."""

    def __init__(self, send: Callable[[str, Screen], Awaitable[None]], interval: float) -> None:
        self._send = send
        self._interval = interval
        self._last: dict[str, float] = {}
        self._pending: dict[str, Screen] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}

    async def update(self, job_id: str, screen: Screen, *, final: bool = False) -> None:
        self._pending[job_id] = screen
        if final:
            await self._flush(job_id)
            self._forget(job_id)
            return
        if job_id not in self._last:
            await self._flush(job_id)  # the first status goes out at once
            return
        flusher = self._flushers.get(job_id)
        if flusher is None or flusher.done():
            self._flushers[job_id] = asyncio.create_task(self._flush(job_id))

    async def _flush(self, job_id: str) -> None:
        lock = self._locks.setdefault(job_id, asyncio.Lock())
        async with lock:
            wait = self._last.get(job_id, 0.0) + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            screen = self._pending.pop(job_id, None)
            if screen is None:
                return
            try:
                await self._send(job_id, screen)
            except Exception:  # a status edit must never break a job
                log.warning("status update for job %s failed", job_id, exc_info=True)
            self._last[job_id] = time.monotonic()

    def _forget(self, job_id: str) -> None:
        self._last.pop(job_id, None)
        self._locks.pop(job_id, None)
        flusher = self._flushers.pop(job_id, None)
        if flusher is not None and flusher is not asyncio.current_task():
            flusher.cancel()

    async def close(self) -> None:
        for task in list(self._flushers.values()):
            task.cancel()
        self._flushers.clear()


class FairQueue:
    """Queued job ids per user, served round-robin so no user starves the others."""

    def __init__(self) -> None:
        self._by_user: dict[int, deque[str]] = {}
        self._turns: deque[int] = deque()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_user.values())

    def push(self, user_id: int, job_id: str) -> None:
        if user_id not in self._by_user:
            self._by_user[user_id] = deque()
            self._turns.append(user_id)
        self._by_user[user_id].append(job_id)

    def pop(self) -> tuple[int, str] | None:
        while self._turns:
            user_id = self._turns.popleft()
            jobs = self._by_user[user_id]
            job_id = jobs.popleft()
            if jobs:
                self._turns.append(user_id)
            else:
                del self._by_user[user_id]
            return user_id, job_id
        return None

    def remove(self, user_id: int, job_id: str) -> bool:
        jobs = self._by_user.get(user_id)
        if not jobs or job_id not in jobs:
            return False
        jobs.remove(job_id)
        if not jobs:
            del self._by_user[user_id]
            self._turns.remove(user_id)
        return True

    def order(self) -> list[str]:
        """Every queued job id in the order they will start."""
        lanes = [list(self._by_user[user]) for user in self._turns]
        result: list[str] = []
        depth = 0
        while True:
            row = [lane[depth] for lane in lanes if depth < len(lane)]
            if not row:
                return result
            result.extend(row)
            depth += 1

    def position(self, job_id: str) -> int | None:
        order = self.order()
        return order.index(job_id) + 1 if job_id in order else None


class JobEngine:
    def __init__(
        self,
        *,
        jobs: JobStore,
        ledger: CreditLedger,
        models: dict[str, ModelSpec],
        backend: Backend,
        notifiers: dict[str, Notifier],
        media_dir: Path,
        templates: TemplateCatalogue | None = None,
        fit_output: Fitter | None = None,
        max_concurrent: int = 8,
        max_active_per_user: int = 2,
        timeout: float = 900.0,
        webhook_url: str | None = None,
        status_interval: float = STATUS_INTERVAL,
        poll_initial: float = 1.0,
        poll_max: float = 8.0,
        webhook_fallback: float = 60.0,
        progress_every: float = 10.0,
        delivery_timeout: float = DELIVERY_TIMEOUT,
    ) -> None:
        self.jobs = jobs
        self.ledger = ledger
        self.models = models
        self.backend = backend
        self.notifiers = notifiers
        self.templates = templates
        self.media_dir = media_dir
        self.fit_output = fit_output
        self.max_concurrent = max_concurrent
        self.max_active_per_user = max_active_per_user
        self.timeout = timeout
        self.webhook_url = webhook_url if backend.supports_webhooks else None
        self.poll_initial = poll_initial
        self.poll_max = poll_max
        self.webhook_fallback = webhook_fallback
        self.progress_every = progress_every
        self.delivery_timeout = delivery_timeout
        self.stats = EngineStats()
        self.queue = FairQueue()
        self._queued_jobs: dict[str, Job] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._delivering: dict[str, asyncio.Task[None]] = {}
        self._creating: set[str] = set()  # jobs whose create request is in flight
        self._webhook_results: dict[str, Prediction] = {}
        self._webhook_events: dict[str, asyncio.Event] = {}
        self._estimates: dict[str, float] = {}
        self._wakeup = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._pacer = StatusPacer(self._send_status, status_interval)
        self._closing = False
        self._telling: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Recover what a previous run left, then start scheduling."""
        (self.media_dir / "outputs").mkdir(parents=True, exist_ok=True)
        await self.recover()
        self._scheduler = asyncio.create_task(self._schedule(), name="job-scheduler")

    async def stop(self) -> None:
        """Stop working; unfinished jobs stay stored and resume on the next start."""
        self._closing = True
        tasks = [t for t in (self._scheduler, *self._running.values(), *self._delivering.values(),
                             *self._telling) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._pacer.close()

    async def recover(self) -> dict[str, int]:
        queued = await self.jobs.with_status(QUEUED)
        running = await self.jobs.with_status(RUNNING)
        undelivered = await self.jobs.with_status(JOB_SUCCEEDED)
        for job in queued:
            self._enqueue(job)
        for job in running:
            self._start(job)
        for job in undelivered:
            self._start_delivery(job)
        counts = {"queued": len(queued), "running": len(running), "undelivered": len(undelivered)}
        log.info(
            "recovery: %d queued jobs re-queued, %d running jobs re-attached, "
            "%d undelivered jobs being delivered",
            counts["queued"], counts["running"], counts["undelivered"],
        )
        self._wakeup.set()
        return counts

    # --- what users do -----------------------------------------------------------------
    async def submit(
        self,
        *,
        user_id: int,
        platform: str,
        chat_id: str,
        language: str,
        request: JobRequest,
        reply_to_message_id: str | None = None,
        session_id: str | None = None,
        charge_key: str | None = None,
        owner_id: str | None = None,
        owner_name: str | None = None,
    ) -> Job:
        """Store and charge a job in one transaction, then queue it. `owner_id` (platform
        user id) and `owner_name` travel with the job so notifiers can mention its owner.

        `charge_key` names the press that asked (a repeat raises AlreadyStarted).
        Raises InsufficientCredits / TooManyActiveJobs / OptionInvalid with nothing stored.
        """
        spec = self.models[request.action]
        price = spec.price_for(request.options)  # refuses bad options before charging
        now = time.time()
        job = Job(
            id=new_job_id(), user_id=user_id, platform=platform, chat_id=str(chat_id),
            language=language, session_id=session_id, reply_to_message_id=reply_to_message_id,
            status_message_id=None, action=request.action, model=spec.model_id,
            backend=self.backend.name, request=request, prepared_inputs=None,
            prediction_id=None, price=price, status=QUEUED, error_class=None,
            error_detail=None, output_path=None, delivered_message_id=None,
            delivered_file_id=None, delivery_attempts=0, likes=0, created_at=now,
            started_at=None, deadline_at=None, finished_at=None, owner_id=owner_id,
            owner_name=owner_name,
        )
        async with self.jobs.db.transaction() as tx:
            active = await self.jobs.active_count(tx, user_id)
            if active >= self.max_active_per_user:
                raise TooManyActiveJobs(
                    f"{active} jobs active", limit=self.max_active_per_user
                )
            await self.jobs.insert(tx, job)
            await self.ledger.charge(tx, user_id, price, job_id=job.id, reason=request.action,
                                     key=charge_key)
        log.info("job %s queued: %s for user %s", job.id, request.action, user_id)
        self._enqueue(job)
        await self._push_status(job, self._queued_screen(job))
        self._wakeup.set()
        return job

    async def cancel(self, job_id: str, *, user_id: int | None = None) -> int:
        """Cancel a queued or running job (refunded); return the credits refunded."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id, job_id=job_id)
        if user_id is not None and job.user_id != user_id:
            raise JobNotYours(job_id, job_id=job_id)
        if job.status not in (QUEUED, RUNNING):
            raise JobNotCancelable(job_id, job_id=job_id, status=job.status)
        refunded = await self._end(
            job, JOB_CANCELED, CANCELED_BY_USER, "canceled by the user", only_from=(QUEUED, RUNNING),
            tell=False,
        )
        if refunded is None:
            raise JobNotCancelable(job_id, job_id=job_id, status=job.status)
        # The presser hears "refunded" at once; the status message follows at the paced rate
        # (waiting for the pacer here held a button press for up to two status intervals).
        telling = asyncio.create_task(self._tell_ended(job, CANCELED_BY_USER, refunded))
        self._telling.add(telling)
        telling.add_done_callback(self._telling.discard)
        self.queue.remove(job.user_id, job.id)
        self._queued_jobs.pop(job.id, None)
        task = self._running.get(job.id)
        # A create in flight is left to finish: its prediction exists only once it answers,
        # and the job's task then finds the job canceled and cancels that prediction.
        if task is not None and task is not asyncio.current_task() and job.id not in self._creating:
            task.cancel()
        # Read again: an id stored since the first read is this job's too (a later one
        # cannot be stored any more: the backend port cancels it itself).
        ended = await self.jobs.get(job.id)
        prediction_id = ended.prediction_id if ended is not None else job.prediction_id
        if prediction_id:
            with contextlib.suppress(Exception):
                await self.backend.cancel(prediction_id)
        self._wakeup.set()
        return refunded

    async def on_webhook(self, prediction: Prediction) -> bool:
        """A verified webhook: hand the prediction to its waiting job. Duplicates are harmless."""
        if not prediction.done:
            return False
        self._webhook_results[prediction.id] = prediction
        event = self._webhook_events.get(prediction.id)
        if event is not None:
            event.set()
            self.stats.webhooks_accepted += 1
            return True
        job = await self.jobs.by_prediction(prediction.id)
        if job is None:
            # Its create's answer may not be stored yet: keep the result for `_wait` (bounded).
            while len(self._webhook_results) > 10_000:
                self._webhook_results.pop(next(iter(self._webhook_results)))
            self.stats.webhooks_ignored += 1
            return False
        if job.status not in (QUEUED, RUNNING):  # queued: its id is stored, `_wait` not yet begun
            self._webhook_results.pop(prediction.id, None)
            self.stats.webhooks_ignored += 1
            return False
        self.stats.webhooks_accepted += 1
        return True

    def position(self, job_id: str) -> int | None:
        return self.queue.position(job_id)

    @property
    def alive(self) -> bool:
        return self._scheduler is not None and not self._scheduler.done()

    @property
    def running_count(self) -> int:
        return len(self._running)

    def queue_depth(self) -> int:
        return len(self.queue)

    # --- scheduling --------------------------------------------------------------
    def _enqueue(self, job: Job) -> None:
        self._queued_jobs[job.id] = job
        self.queue.push(job.user_id, job.id)

    async def _schedule(self) -> None:
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            started = False
            while len(self._running) < self.max_concurrent:
                picked = self.queue.pop()
                if picked is None:
                    break
                job = self._queued_jobs.pop(picked[1], None)
                if job is not None:
                    self._start(job)
                    started = True
            if started:
                await self._refresh_positions()

    async def _refresh_positions(self, limit: int = 100) -> None:
        for position, job_id in enumerate(self.queue.order()[:limit], start=1):
            job = self._queued_jobs.get(job_id)
            if job is not None:
                await self._pacer.update(job.id, job_screens.queued_screen(job, self._what(job), position))

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(functools.partial(self._finished_running, job.id))

    def _finished_running(self, job_id: str, _task: object = None) -> None:
        self._running.pop(job_id, None)
        self._wakeup.set()

    # --- running a job -----------------------------------------------------------
    async def _run(self, job: Job) -> None:
        spec = self.models[job.action]
        try:
            prediction = await self._generate(job, spec)
            job = await self._fetch_output(job, spec, prediction)
        except _JobEnded:
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # anything unexpected still ends in one refund and a message
            log.exception("job %s failed unexpectedly", job.id)
            await self._end(job, JOB_FAILED, MODEL_ERROR, type(exc).__name__)
            return
        self._start_delivery(job)

    async def _generate(self, job: Job, spec: ModelSpec) -> Prediction:
        """Create (or re-attach to) the prediction and wait for it to finish."""
        while True:
            current = await self.jobs.get(job.id)
            if current is None or current.status not in (QUEUED, RUNNING):
                raise _JobEnded
            job = current
            reattach = job.prediction_id is not None
            job = await self._start_prediction(job, spec)
            try:
                return await self._wait(job, spec, reattach=reattach)
            except PredictionLost:
                if self.backend.name != "local":
                    await self._end(job, JOB_FAILED, MODEL_ERROR, "prediction lost by the backend")
                    raise _JobEnded from None
                # Local work dies with the process that ran it: run it again.
                log.info("job %s: local prediction lost in a restart, starting it again", job.id)
                await self.jobs.forget_prediction(job.id)

    async def _start_prediction(self, job: Job, spec: ModelSpec) -> Job:
        """The job's one prediction (the port adopts or creates it), stored with a deadline."""
        webhook = f"{self.webhook_url}?job={job.id}" if self.webhook_url else None
        # Until its id is stored, a cancel does not interrupt this task: the prediction may
        # exist already, and this task learns its id and cancels it (so does the port).
        self._creating.add(job.id)
        try:
            try:
                prediction_id = await self.backend.start(
                    job.id, spec.request_for(job.id, job.request), starts=self.jobs,
                    webhook_url=webhook,
                )
            except JobGone:
                raise _JobEnded from None
            except LokizError as exc:
                await self._end(job, JOB_FAILED, REJECTED, str(exc))
                raise _JobEnded from None
            except BackendError as exc:
                reason = REJECTED if exc.status == 422 else MODEL_ERROR
                await self._end(job, JOB_FAILED, reason, str(exc))
                raise _JobEnded from None
            if job.prediction_id is None:
                self.stats.backend_requests += 1
            deadline = time.time() + self.timeout
            if not await self.jobs.set_running(job.id, prediction_id, deadline):
                # Canceled while the create was in flight: stop the prediction we would pay for.
                log.info("job %s ended during its create; canceling prediction %s",
                         job.id, prediction_id)
                with contextlib.suppress(Exception):
                    await self.backend.cancel(prediction_id)
                raise _JobEnded
        finally:
            self._creating.discard(job.id)
        if job.prediction_id is None:
            log.info("job %s running as prediction %s", job.id, prediction_id)
        fresh = await self.jobs.get(job.id)
        assert fresh is not None
        return fresh

    async def _wait(self, job: Job, spec: ModelSpec, *, reattach: bool = False) -> Prediction:
        assert job.prediction_id is not None and job.deadline_at is not None
        prediction_id = job.prediction_id
        started = job.started_at or time.time()
        event = self._webhook_events.setdefault(prediction_id, asyncio.Event())
        delay = self.poll_initial
        last_progress = 0.0
        if reattach:  # it may have finished while we were down (its webhook lost)
            prediction = await self._poll(prediction_id)
            if prediction is not None and prediction.done:
                self._webhook_events.pop(prediction_id, None)
                return await self._check_outcome(job, prediction)
        try:
            while True:
                now = time.time()
                if now - last_progress >= self.progress_every:
                    last_progress = now
                    await self._push_status(job, await self._running_screen(job, now - started))
                remaining = job.deadline_at - now
                if remaining <= 0:
                    await self._time_out(job)
                prediction = self._webhook_results.pop(prediction_id, None)
                if prediction is None:
                    wait = min(remaining, self.progress_every)
                    if self.webhook_url:
                        wait = min(wait, self.webhook_fallback)
                    else:
                        wait = min(wait, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), timeout=wait)
                    event.clear()
                    prediction = self._webhook_results.pop(prediction_id, None)
                    if prediction is None and self._should_poll(delay, started):
                        prediction = await self._poll(prediction_id)
                        delay = min(delay * 1.5, self._poll_ceiling())
                if prediction is not None and prediction.done:
                    return await self._check_outcome(job, prediction)
        finally:
            self._webhook_events.pop(prediction_id, None)

    def _poll_ceiling(self) -> float:
        """Longest wait between polls: grows with the jobs in flight so that all of
        them together stay near POLLS_PER_SECOND (the backend's request budget)."""
        return max(self.poll_max, len(self._running) / POLLS_PER_SECOND)

    def _should_poll(self, delay: float, started: float) -> bool:
        if not self.webhook_url:
            return True
        # With webhooks, polling is only the fallback for a webhook that never came.
        return time.time() - started >= self.webhook_fallback

    async def _poll(self, prediction_id: str) -> Prediction | None:
        try:
            prediction = await self.backend.get(prediction_id)
        except PredictionLost:
            raise
        except BackendError as exc:
            if not exc.retryable:
                raise
            log.info("polling %s failed (%s); will retry", prediction_id, exc)
            return None
        finally:
            self.stats.backend_requests += 1
        return prediction

    async def _check_outcome(self, job: Job, prediction: Prediction) -> Prediction:
        if prediction.status == SUCCEEDED:
            return prediction
        detail = (prediction.error or prediction.status)[:300]
        if prediction.status == FAILED:
            rejected = any(word in detail.lower() for word in _REJECTION_WORDS)
            await self._end(job, JOB_FAILED, REJECTED if rejected else MODEL_ERROR, detail)
        elif prediction.status == CANCELED:
            await self._end(job, JOB_CANCELED, CANCELED_BY_USER, detail)
        elif prediction.status == ABORTED:
            await self._end(job, JOB_FAILED, ABORTED_REASON, detail)
        else:
            await self._end(job, JOB_FAILED, MODEL_ERROR, f"unknown status {prediction.status}")
        raise _JobEnded

    async def _time_out(self, job: Job) -> None:
        if job.prediction_id:
            with contextlib.suppress(Exception):
                await self.backend.cancel(job.prediction_id)
        await self._end(job, JOB_TIMED_OUT, TIMEOUT, f"no result within {self.timeout:.0f}s")
        raise _JobEnded

    async def _fetch_output(self, job: Job, spec: ModelSpec, prediction: Prediction) -> Job:
        """Download the output at once (Replicate deletes it after an hour)."""
        dest = self.media_dir / "outputs" / f"{job.id}{spec.output_suffix}"
        for attempt in range(4):
            try:
                url = spec.read_output(prediction.output)
                await self.backend.download(url, dest, max_bytes=MAX_OUTPUT_BYTES)
                break
            except OutputMissing as exc:
                await self._end(job, JOB_FAILED, MISSING_OUTPUT, str(exc))
                raise _JobEnded from None
            except BackendError as exc:
                if not exc.retryable or attempt == 3:
                    await self._end(job, JOB_FAILED, MISSING_OUTPUT, str(exc))
                    raise _JobEnded from None
                await asyncio.sleep(2**attempt)
        if not await self.jobs.set_succeeded(job.id, str(dest)):
            raise _JobEnded
        elapsed = time.time() - (job.started_at or time.time())
        self.stats.durations.setdefault(job.model, Histogram()).observe(elapsed)
        self._estimates.pop(job.model, None)
        fresh = await self.jobs.get(job.id)
        assert fresh is not None
        return fresh

    # --- delivery ---------------------------------------------------------------------
    def _start_delivery(self, job: Job) -> None:
        if job.id in self._delivering:
            return
        task = asyncio.create_task(self._deliver(job), name=f"deliver-{job.id}")
        self._delivering[job.id] = task
        task.add_done_callback(functools.partial(self._forget_delivery, job.id))

    def _forget_delivery(self, job_id: str, _task: object = None) -> None:
        self._delivering.pop(job_id, None)

    async def _deliver(self, job: Job) -> None:
        """Send the result once: a send is recorded before it is made, and a job that may
        have reached the chat is never refunded (see MAX_UNSURE_SENDS)."""
        notifier = self.notifiers.get(job.platform)
        what = self._what(job)
        if notifier is None:
            log.warning("job %s: no %s adapter running; will deliver when it is", job.id, job.platform)
            return
        job = await self.jobs.get(job.id) or job
        if job.status != JOB_SUCCEEDED:
            return
        sends = job.delivery_sends
        # A send recorded by an earlier run may have arrived; a platform that drops
        # duplicates itself (Discord's nonce) needs no word about it.
        resent = sends > 0 and not getattr(notifier, "drops_duplicate_sends", False)
        output = Path(job.output_path or "")
        if not output.is_file():
            await self._give_up_delivery(job, what, sends, "output file is gone")
            return
        await self._pacer.update(job.id, job_screens.sending_screen(job, what))
        for attempt in range(job.delivery_attempts, DELIVERY_ATTEMPTS):
            if sends >= MAX_UNSURE_SENDS:
                break
            if attempt > job.delivery_attempts:
                await asyncio.sleep(min(2 ** (attempt - 1), 30))
            try:
                media = await self._media_for(job, notifier, output)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # nothing was sent: safe to try again
                await self.jobs.count_delivery_attempt(job.id)
                log.warning("job %s: preparing the result failed: %s", job.id, exc)
                continue
            screen = job_screens.result_screen(
                job, what, local_preview=job.backend == "local", likes=job.likes, resent=resent
            )
            if not await self.jobs.mark_sending(job.id):
                return  # ended meanwhile
            sends += 1
            crash_point("before_send")
            try:
                receipt = await asyncio.wait_for(
                    notifier.deliver(job, media, screen), self.delivery_timeout
                )
            except RecipientGone as exc:
                await self.jobs.unmark_sending(job.id)
                sends -= 1
                log.info("job %s: chat is gone (%s)", job.id, exc)
                if sends:
                    break  # an earlier send may have arrived: never refunded
                await self._end(job, JOB_FAILED, UNDELIVERABLE, str(exc), tell=False)
                return
            except (NotDelivered, ConnectionRefusedError) as exc:
                await self.jobs.unmark_sending(job.id)
                sends -= 1
                await self.jobs.count_delivery_attempt(job.id)
                log.warning("job %s: delivery attempt %d not delivered: %s", job.id, attempt + 1, exc)
                continue
            except asyncio.CancelledError:
                raise  # stopping: the recorded send is re-checked on the next start
            except (MaybeDelivered, Exception) as exc:  # the answer is lost: it may have arrived
                await self.jobs.count_delivery_attempt(job.id)
                log.warning(
                    "job %s: delivery attempt %d may have arrived (%s: %s)",
                    job.id, attempt + 1, type(exc).__name__, exc,
                )
                continue
            crash_point("after_send")
            await self.jobs.set_delivered(job.id, receipt.message_id, receipt.file_id)
            log.info("job %s delivered", job.id)
            await self._pacer.update(job.id, job_screens.done_screen(job, what), final=True)
            return
        await self._give_up_delivery(job, what, sends, "delivery kept failing")

    async def _give_up_delivery(self, job: Job, what: str, sends: int, detail: str) -> None:
        """No confirmed delivery: refunded only when no send of it can have arrived."""
        if sends == 0:
            await self._end(job, JOB_FAILED, UNDELIVERABLE, detail)
            return
        if await self.jobs.set_delivered(job.id, None, None, unconfirmed=True):
            log.warning("job %s: %s; a send may have arrived, so delivered (unconfirmed)", job.id, detail)
            await self._pacer.update(job.id, job_screens.done_screen(job, what), final=True)

    async def _media_for(self, job: Job, notifier: Notifier, output: Path) -> OutputMedia:
        spec = self.models[job.action]
        if spec.output_kind == "video" and self.fit_output is not None:
            return await self.fit_output(output, notifier.upload_limit(job))
        return OutputMedia(path=output, kind=spec.output_kind)

    # --- endings and status -----------------------------------------------------------
    async def _end(
        self,
        job: Job,
        status: str,
        reason: str,
        detail: str,
        *,
        tell: bool = True,
        only_from: tuple[str, ...] = (QUEUED, RUNNING, JOB_SUCCEEDED),
    ) -> int | None:
        """Record a failed / canceled / timed-out job with its one refund, and say so."""
        refunded = await self.jobs.finish_unsuccessfully(
            job.id, status, reason, detail, only_from=only_from
        )
        if refunded is None:
            return None
        log.info("job %s %s (%s): %s; refunded %d", job.id, status, reason, detail, refunded)
        if tell:
            await self._tell_ended(job, reason, refunded)
        return refunded

    async def _tell_ended(self, job: Job, reason: str, refunded: int) -> None:
        fresh = await self.jobs.get(job.id) or job
        screen = job_screens.failed_screen(fresh, self._what(fresh), reason, refunded)
        await self._pacer.update(job.id, screen, final=True)

    async def _push_status(self, job: Job, screen: Screen) -> None:
        await self._pacer.update(job.id, screen)

    async def _send_status(self, job_id: str, screen: Screen) -> None:
        job = await self.jobs.get(job_id)
        if job is None:
            return
        notifier = self.notifiers.get(job.platform)
        if notifier is None:
            return
        try:
            message_id = await notifier.show_status(job, screen)
        except RecipientGone:
            return
        if message_id and message_id != job.status_message_id:
            await self.jobs.set_status_message(job.id, message_id)

    def _queued_screen(self, job: Job) -> Screen:
        return job_screens.queued_screen(job, self._what(job), self.position(job.id) or 1)

    async def _running_screen(self, job: Job, elapsed: float) -> Screen:
        return job_screens.running_screen(job, self._what(job), elapsed, await self.estimate(job.model))

    async def estimate(self, model: str) -> float:
        """Typical generation time of `model`, learned from its recent finished jobs."""
        if model not in self._estimates:
            learned = await self.jobs.recent_run_seconds(model)
            default = next(
                (spec.typical_seconds for spec in self.models.values() if spec.model_id == model), 60.0
            )
            self._estimates[model] = learned if learned is not None else default
        return self._estimates[model]

    def _what(self, job: Job) -> str:
        return job_screens.describe(job, self.templates, job.language)

    def with_notifier(self, notifier: Notifier) -> None:
        """Register an adapter's notifier (adapters start after the engine is built)."""
        self.notifiers[notifier.platform] = notifier

