"""The job engine's facade: a request becomes a clip exactly once, whatever fails on the way.

- `submit` stores the job and charges for it in one transaction, then queues it.
- `run_job(job_id)` is one step of one job, on any instance: it claims the job with a
  conditional update (a lease), then runs it from its stored state to its end —
  creating or re-attaching its prediction (runner.py), delivering it (deliverer.py) —
  and `finish`es once. Calling it twice, here or on another instance, makes one
  prediction and one delivery.
- The in-process fair scheduler (scheduler.py) drives `run_job`; `recover` at start
  hands it what a crash left.
- `finish(job, outcome)` is the one place a job ends: it records the outcome, refunds
  (never a job whose send may have reached the chat) and tells the chat, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.backends.base import Backend, Prediction
from core.catalogue import JobRequest, ModelSpec, TemplateCatalogue
from core.credits import CreditLedger
from core.engine.deliverer import DELIVERY_TIMEOUT, Deliverer, Fitter
from core.engine.inbox import WebhookInbox
from core.engine.outcomes import Delivered, Ended, JobStop, Outcome, Stopped, failed
from core.engine.runner import PredictionRunner, RunnerSettings
from core.engine.scheduler import FairQueue, FairScheduler
from core.engine.status import STATUS_INTERVAL, StatusPacer, StatusReporter
from core.errors import LokizError, TooManyActiveJobs
from core.jobs import ACTIVE, UNFINISHED, EndReason, Job, JobStatus, JobStore, new_job_id
from core.media_store import MediaStore
from core.metrics import Histogram
from core.notify import Notifier

if TYPE_CHECKING:
    from core.engine.cluster import ClusterQueue
    from core.storage.postgres import PostgresDatabase

log = logging.getLogger(__name__)

CLAIM_LEASE = 30.0  # a claim not renewed for this long lets another instance take the job


class JobNotFound(LokizError):
    key = "error.job_not_found"


class JobNotYours(LokizError):
    key = "error.job_not_yours"


class JobNotCancelable(LokizError):
    key = "error.job_not_cancelable"


@dataclass
class EngineStats:
    """Counters for /metrics, kept in memory (the database holds the truth)."""

    durations: dict[str, Histogram] = field(default_factory=dict)
    backend_requests: int = 0
    webhooks_accepted: int = 0
    webhooks_ignored: int = 0
    webhooks_rejected: int = 0


class JobEngine:
    def __init__(
        self,
        *,
        jobs: JobStore,
        ledger: CreditLedger,
        models: dict[str, ModelSpec],
        backend: Backend,
        notifiers: dict[str, Notifier],
        media_dir: Path | None = None,
        media: MediaStore | None = None,
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
        instance_id: str = "main",
        claim_lease: float = CLAIM_LEASE,
    ) -> None:
        self.jobs = jobs
        self.ledger = ledger
        self.models = models
        self._backend = backend
        self.notifiers = notifiers
        self.templates = templates
        # Inputs and outputs by ref through the media store (MEDIA_URL: shared by every
        # instance); a bare `media_dir` is the local folder, as before.
        if media is None:
            assert media_dir is not None, "JobEngine needs media or media_dir"
            media = MediaStore(media_dir)
        self.media = media
        self.media_dir = media.root
        self.max_active_per_user = max_active_per_user
        # Instances sharing one database need distinct ids; one that restarts under the
        # same id takes its own claims back at once.
        self.instance_id = instance_id
        self.claim_lease = claim_lease
        self.stats = EngineStats()
        self.inbox = WebhookInbox()
        self.status = StatusReporter(
            jobs=jobs, notifiers=notifiers, models=models, templates=templates,
            interval=status_interval,
        )
        self._pacer: StatusPacer = self.status.pacer
        self.scheduler = FairScheduler(
            self.run_job, max_concurrent=max_concurrent, show_positions=self._show_positions
        )
        self.runner = PredictionRunner(
            backend=backend, jobs=jobs, inbox=self.inbox, media=media,
            settings=RunnerSettings(
                timeout=timeout, webhook_url=webhook_url if backend.supports_webhooks else None,
                poll_initial=poll_initial, poll_max=poll_max, webhook_fallback=webhook_fallback,
                progress_every=progress_every,
            ),
            in_flight=lambda: self.scheduler.generating, on_progress=self.status.running,
            on_request=self._count_request,
        )
        self.deliverer = Deliverer(
            jobs=jobs, notifiers=notifiers, models=models, describe=self.status.what,
            fit_output=fit_output, delivery_timeout=delivery_timeout, media=media,
        )
        self._steps: dict[str, asyncio.Task[Outcome]] = {}
        self._claimed: dict[str, float] = {}  # job id → when this instance claimed it
        self._interrupted: dict[str, str] = {}  # steps stopped on purpose, and why
        self._renewer: asyncio.Task[None] | None = None
        self._telling: set[asyncio.Task[None]] = set()
        # PostgreSQL mode: jobs run on procrastinate (cluster.py), not the in-process scheduler.
        self.cluster: ClusterQueue | None = None
        self._positions_shown = 0.0

    def use_cluster(self, db: PostgresDatabase, *, concurrency: int, drain_seconds: float) -> ClusterQueue:
        """Run jobs on procrastinate in `db`: `MAX_CONCURRENT_JOBS` becomes a ceiling for the
        whole deployment, enforced when a job is claimed; the fair order and queue
        positions come from the database."""
        from core.engine.cluster import CLUSTER_CLAIM_LEASE, ClusterQueue

        self.claim_lease = min(self.claim_lease, CLUSTER_CLAIM_LEASE)
        self.cluster = ClusterQueue(
            self, db, concurrency=concurrency, drain_seconds=drain_seconds,
            ceiling=self.scheduler.max_concurrent,
        )
        return self.cluster

    # --- parts and settings others read (and tests swap) ---------------------------------
    @property
    def backend(self) -> Backend:
        return self._backend

    @backend.setter
    def backend(self, backend: Backend) -> None:
        self._backend = backend
        self.runner.backend = backend

    @property
    def webhook_url(self) -> str | None:
        return self.runner.settings.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.runner.settings.webhook_url = url if self.backend.supports_webhooks else None

    @property
    def delivery_timeout(self) -> float:
        return self.deliverer.delivery_timeout

    @delivery_timeout.setter
    def delivery_timeout(self, seconds: float) -> None:
        self.deliverer.delivery_timeout = seconds

    @property
    def queue(self) -> FairQueue:
        return self.scheduler.queue

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self, *, worker: bool = True) -> None:
        """Recover what a previous run left, then start scheduling. In PostgreSQL mode,
        start a job worker here unless `worker` is False (adapters only)."""
        (self.media_dir / "outputs").mkdir(parents=True, exist_ok=True)
        if self.cluster is not None:
            # Workers take what a crash left (stalled tokens, `ensure_tokens`).
            await self.cluster.open()
            if worker:
                await self.cluster.start_worker()
        else:
            await self.recover()
        self.scheduler.start()

    async def stop(self) -> None:
        """Stop working; unfinished jobs stay stored (claims released) and resume on the
        next start."""
        if self.cluster is not None:
            await self.cluster.stop_worker(grace=0)  # its steps hand their jobs back
        await self.scheduler.stop()
        tasks = [*self._steps.values(), *self._telling, *([self._renewer] if self._renewer else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.status.close()
        if self.cluster is not None:
            await self.cluster.close()

    async def recover(self) -> dict[str, int]:
        """Hand the scheduler every unfinished job: queued ones wait their turn, running
        ones re-attach, succeeded ones are delivered."""
        queued = await self.jobs.with_status(JobStatus.QUEUED)
        running = await self.jobs.with_status(JobStatus.RUNNING)
        undelivered = await self.jobs.with_status(JobStatus.SUCCEEDED)
        for job in queued:
            self.scheduler.push(job)
        for job in running:
            self.scheduler.start_now(job.id)
        for job in undelivered:
            self.scheduler.start_now(job.id, slot=False)
        counts = {"queued": len(queued), "running": len(running), "undelivered": len(undelivered)}
        log.info(
            "recovery: %d queued jobs re-queued, %d running jobs re-attached, "
            "%d undelivered jobs being delivered",
            counts["queued"], counts["running"], counts["undelivered"],
        )
        self.scheduler.wake()
        return counts

    # --- what users do -------------------------------------------------------------------
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
        # Its files as refs: with MEDIA_URL, keys any instance's worker can fetch.
        request = replace(request, image=self.media.ref(request.image) if request.image else None,
                          clip=self.media.ref(request.clip) if request.clip else None)
        now = time.time()
        job = Job(
            id=new_job_id(), user_id=user_id, platform=platform, chat_id=str(chat_id),
            language=language, session_id=session_id, reply_to_message_id=reply_to_message_id,
            status_message_id=None, action=request.action, model=spec.model_id,
            backend=self.backend.name, request=request, prepared_inputs=None,
            prediction_id=None, price=price, status=JobStatus.QUEUED, error_class=None,
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
            if self.cluster is not None:  # the queue entry commits with the job and its charge
                await self.cluster.defer(tx, job.id)
        log.info("job %s queued: %s for user %s", job.id, request.action, user_id)
        if self.cluster is None:
            self.scheduler.push(job)
        await self.status.queued(job, await self.queue_position(job.id) or 1)
        return job

    async def cancel(self, job_id: str, *, user_id: int | None = None) -> int:
        """Cancel a queued or running job (refunded); return the credits refunded."""
        job = await self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id, job_id=job_id)
        if user_id is not None and job.user_id != user_id:
            raise JobNotYours(job_id, job_id=job_id)
        if job.status not in ACTIVE:
            raise JobNotCancelable(job_id, job_id=job_id, status=job.status)
        # The presser hears "refunded" at once; the status message follows at the paced rate
        # (waiting for the pacer here held a button press for up to two status intervals).
        refunded = await self.finish(
            job, Ended(JobStatus.CANCELED, EndReason.CANCELED_BY_USER, "canceled by the user"),
            only_from=ACTIVE, tell_later=True,
        )
        if refunded is None:
            raise JobNotCancelable(job_id, job_id=job_id, status=job.status)
        self.scheduler.remove(job)
        # A create in flight is left to finish: its prediction exists only once it answers,
        # and the job's step then finds the job canceled and cancels that prediction.
        if job.id not in self.runner.creating:
            self._interrupt(job.id, "canceled by its user")
        # Read again: an id stored since the first read is this job's too (a later one
        # cannot be stored any more: the backend port cancels it itself).
        ended = await self.jobs.get(job.id)
        prediction_id = ended.prediction_id if ended is not None else job.prediction_id
        if prediction_id:
            with contextlib.suppress(Exception):
                await self.backend.cancel(prediction_id)
        self.scheduler.wake()
        return refunded

    async def on_webhook(self, prediction: Prediction) -> bool:
        """A verified webhook: hand the prediction to its waiting job. Duplicates are harmless."""
        if not prediction.done:
            return False
        if self.inbox.post(prediction):
            self.stats.webhooks_accepted += 1
            return True
        if self.cluster is not None and await self.cluster.publish_webhook(prediction):
            # Its job waits on another instance (or will): recorded there and woken.
            self.inbox.drop(prediction.id)
            self.stats.webhooks_accepted += 1
            return True
        job = await self.jobs.by_prediction(prediction.id)
        if job is None:
            # Its create's answer may not be stored yet: the inbox keeps it for the waiter.
            self.stats.webhooks_ignored += 1
            return False
        if job.status not in ACTIVE:  # queued: its id is stored, its wait not yet begun
            self.inbox.drop(prediction.id)
            self.stats.webhooks_ignored += 1
            return False
        self.stats.webhooks_accepted += 1
        return True

    def position(self, job_id: str) -> int | None:
        """The job's place in this process's queue (see `queue_position` for every mode)."""
        return self.scheduler.position(job_id)

    async def queue_position(self, job_id: str) -> int | None:
        """The job's place in the queue: the in-process one, or the database's fair order."""
        if self.cluster is not None:
            return await self.jobs.queue_position(job_id)
        return self.scheduler.position(job_id)

    async def show_positions(self, limit: int = 20, every: float = 3.0) -> None:
        """PostgreSQL mode: the first waiting jobs hear their new places (at most every
        `every` seconds per process; jobs of platforms not served here are skipped)."""
        if time.monotonic() - self._positions_shown < every:
            return
        self._positions_shown = time.monotonic()
        waiting = [(job, place) for job, place in await self.jobs.waiting(limit)
                   if job.platform in self.notifiers]
        await self._show_positions(waiting)

    @property
    def alive(self) -> bool:
        return self.scheduler.alive

    @property
    def running_count(self) -> int:
        return self.scheduler.generating

    def queue_depth(self) -> int:
        return len(self.scheduler)

    async def estimate(self, model: str) -> float:
        """Typical generation time of `model`, learned from its recent finished jobs."""
        return await self.status.estimate(model)

    def with_notifier(self, notifier: Notifier) -> None:
        """Register an adapter's notifier (adapters start after the engine is built)."""
        self.notifiers[notifier.platform] = notifier

    # --- one step of one job -------------------------------------------------------------
    async def run_job(self, job_id: str) -> Outcome:
        """Run the job from its stored state to its end, on this instance, once.

        Claims the job with a conditional update (a lease kept alive while it runs): if
        another instance holds it, returns Stopped(retry=True) at once; if it already
        ended, Stopped(retry=False). A second call here joins the step in progress.
        """
        running = self._steps.get(job_id)
        if running is not None:
            return await asyncio.shield(running)
        step = asyncio.create_task(self._step(job_id), name=f"step-{job_id}")
        self._steps[job_id] = step
        # Forgotten only once the step has fully ended (its claim released), so that no
        # second step of the job starts here while the first still holds the claim.
        step.add_done_callback(lambda _: self._steps.pop(job_id, None))
        return await step

    async def _step(self, job_id: str) -> Outcome:
        job = await self.jobs.claim(job_id, self.instance_id, self.claim_lease)
        if job is None:
            self.scheduler.release(job_id)
            current = await self.jobs.get(job_id)
            if current is None or current.status not in UNFINISHED:
                return Stopped("already ended")
            return Stopped("claimed by another instance", retry=True)
        self._claimed[job_id] = time.monotonic()
        self._keep_claims()
        try:
            # Every way a step can end is sorted here; the job then finishes once.
            try:
                outcome = await self._advance(job)
            except JobStop as stop:
                outcome = stop.outcome
            except asyncio.CancelledError:
                step = asyncio.current_task()
                why = self._interrupted.pop(job_id, None)
                if why is None or step is None:
                    raise  # the engine is stopping: the job stays as stored
                step.uncancel()
                return Stopped(why)
            except Exception as exc:  # anything unexpected still ends in one refund and a message
                log.exception("job %s failed unexpectedly", job.id)
                outcome = failed(EndReason.MODEL_ERROR, type(exc).__name__)
            await self.finish(job, outcome)
            return outcome
        finally:
            self._claimed.pop(job_id, None)  # before the release: see `_renew_claims`
            self._interrupted.pop(job_id, None)
            self.scheduler.release(job_id)
            with contextlib.suppress(Exception):
                await self.jobs.release_claim(job_id, self.instance_id)

    async def _advance(self, job: Job) -> Outcome:
        """Generate (if not yet), then deliver."""
        if job.status in ACTIVE:
            try:
                job, output = await self.runner.run(job, self.models[job.action])
            finally:
                self.scheduler.release(job.id)
                if self.cluster is not None:  # its generating slot is free: waiting tokens ask
                    self.cluster.slot_freed()
            # Shared before it is recorded: any instance may deliver it, or remix it.
            output_ref = await self.media.share(output)
            if not await self.jobs.set_succeeded(job.id, output_ref):
                return Stopped("ended while generating")
            now = time.time()
            self.stats.durations.setdefault(job.model, Histogram()).observe(
                now - (job.started_at or now)
            )
            self.status.learned(job.model)
            job = replace(job, status=JobStatus.SUCCEEDED, output_path=output_ref, finished_at=now)
        await self.status.sending(job)
        return await self.deliverer.deliver(job)

    def _interrupt(self, job_id: str, why: str) -> None:
        """Stop the job's step here; its `run_job` answers Stopped(why)."""
        step = self._steps.get(job_id)
        if step is not None and step is not asyncio.current_task():
            self._interrupted[job_id] = why
            step.cancel()

    def _keep_claims(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_claims(), name="claim-renewer")

    async def _renew_claims(self) -> None:
        """Renew every claim of this instance in one statement each lease/3, while steps
        run. A claim lost (this instance stalled past its lease and another took the job)
        stops its step here rather than run the job twice."""
        while self._claimed:
            await asyncio.sleep(self.claim_lease / 3)
            began = time.monotonic()
            claimed = list(self._claimed)
            if not claimed:
                return
            try:
                held = await self.jobs.renew_claims(claimed, self.instance_id, self.claim_lease)
            except Exception:
                log.warning("renewing job claims failed", exc_info=True)
                continue
            for job_id in claimed:
                since = self._claimed.get(job_id)
                # A step that ended meanwhile popped its entry before releasing its claim.
                if job_id in held or since is None or since > began:
                    continue
                log.warning("job %s: its claim was taken over; stopping here", job_id)
                self._interrupt(job_id, "claim taken over by another instance")

    # --- the one way out -----------------------------------------------------------------
    async def finish(
        self,
        job: Job,
        outcome: Outcome,
        *,
        only_from: tuple[JobStatus, ...] = UNFINISHED,
        tell_later: bool = False,
    ) -> int | None:
        """Record how the job ended, refund it if it ended unsuccessfully (never when a send
        may have reached the chat) and tell the chat — each exactly once, whoever calls.

        Returns the credits refunded for an `Ended` outcome (None when the job had already
        ended); None otherwise. `tell_later` says it in the background (a button press
        should not wait for the status pacing).
        """
        if isinstance(outcome, Stopped):
            return None
        if isinstance(outcome, Delivered):
            if await self.jobs.set_delivered(
                job.id, outcome.message_id, outcome.file_id, unconfirmed=outcome.unconfirmed
            ):
                log.info("job %s delivered%s", job.id, " (unconfirmed)" if outcome.unconfirmed else "")
                await self.status.done(job)
            return None
        refunded = await self.jobs.finish_unsuccessfully(
            job.id, outcome.status, outcome.reason, outcome.detail, only_from=only_from
        )
        if refunded is None:
            return None
        log.info("job %s %s (%s): %s; refunded %d",
                 job.id, outcome.status, outcome.reason, outcome.detail, refunded)
        if outcome.tell:
            telling = self.status.ended(job, outcome.reason, refunded)
            if tell_later:
                task = asyncio.create_task(telling)
                self._telling.add(task)
                task.add_done_callback(self._telling.discard)
            else:
                await telling
        return refunded

    # --- helpers ---------------------------------------------------------------------------
    def _count_request(self) -> None:
        self.stats.backend_requests += 1

    async def _show_positions(self, waiting: list[tuple[Job, int]]) -> None:
        for job, position in waiting:
            await self.status.queued(job, position)
