"""Running a job's prediction: prepare, create (or re-attach to) it, wait for it by webhook
or polling under a deadline, and fetch its output. Every ending is raised as `JobStop`
with an outcome; nothing here refunds or speaks to a chat."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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
from core.catalogue import JobRequest, ModelSpec
from core.engine.inbox import WebhookInbox
from core.engine.outcomes import Ended, JobStop, Stopped, failed
from core.errors import LokizError
from core.jobs import EndReason, Job, JobStatus, JobStore
from core.media_store import MediaStore

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1 << 30
POLLS_PER_SECOND = 20.0  # half of the Replicate backend's request budget
# Inputs a model refuses show up as failed predictions with these words.
_REJECTION_WORDS = ("invalid", "nsfw", "safety", "sensitive", "flagged", "rejected", "not allowed")


@dataclasses.dataclass
class RunnerSettings:
    timeout: float = 900.0
    webhook_url: str | None = None
    poll_initial: float = 1.0
    poll_max: float = 8.0
    webhook_fallback: float = 60.0
    progress_every: float = 10.0


class PredictionRunner:
    """Takes a queued or running job to a downloaded output file."""

    def __init__(
        self,
        *,
        backend: Backend,
        jobs: JobStore,
        inbox: WebhookInbox,
        media: MediaStore,
        settings: RunnerSettings,
        in_flight: Callable[[], int],
        on_progress: Callable[[Job, float], Awaitable[None]],
        on_request: Callable[[], None],
    ) -> None:
        self.backend = backend
        self.jobs = jobs
        self.inbox = inbox
        self.media = media
        self.settings = settings
        self._in_flight = in_flight
        self._on_progress = on_progress
        self._on_request = on_request
        self.creating: set[str] = set()  # jobs whose create request is in flight

    async def run(self, job: Job, spec: ModelSpec) -> tuple[Job, Path]:
        """The job as it ran (prediction id, start time) and its output, downloaded.
        Raises JobStop when the job ends on the way."""
        while True:
            reattach = job.prediction_id is not None
            job = await self._start(job, spec)
            try:
                prediction = await self._wait(job, reattach=reattach)
                break
            except PredictionLost:
                if self.backend.name != "local":
                    raise JobStop(failed(EndReason.MODEL_ERROR, "prediction lost by the backend")) from None
                # Local work dies with the process that ran it: run it again.
                log.info("job %s: local prediction lost in a restart, starting it again", job.id)
                if not await self.jobs.forget_prediction(job.id):
                    raise JobStop(Stopped("ended meanwhile")) from None
                job = dataclasses.replace(job, prediction_id=None)
        return job, await self._fetch_output(job, spec, prediction)

    async def _start(self, job: Job, spec: ModelSpec) -> Job:
        """The job's one prediction (the port adopts or creates it), stored with a deadline."""
        url = self.settings.webhook_url
        webhook = f"{url}?job={job.id}" if url else None
        # Until its id is stored, a cancel does not interrupt this task: the prediction may
        # exist already, and this task learns its id and cancels it (so does the port).
        self.creating.add(job.id)
        try:
            try:
                request = await self._local(job.request) if job.prediction_id is None else job.request
                prediction_id = await self.backend.start(
                    job.id, spec.request_for(job.id, request), starts=self.jobs,
                    webhook_url=webhook,
                )
            except JobGone:
                raise JobStop(Stopped("ended while its prediction was started")) from None
            except LokizError as exc:
                raise JobStop(failed(EndReason.REJECTED, str(exc))) from None
            except BackendError as exc:
                reason = EndReason.REJECTED if exc.status == 422 else EndReason.MODEL_ERROR
                raise JobStop(failed(reason, str(exc))) from None
            if job.prediction_id is None:
                self._on_request()
            now = time.time()
            deadline = now + self.settings.timeout
            if not await self.jobs.set_running(job.id, prediction_id, deadline):
                # Canceled while the create was in flight: stop the prediction we would pay for.
                log.info("job %s ended during its create; canceling prediction %s",
                         job.id, prediction_id)
                with contextlib.suppress(Exception):
                    await self.backend.cancel(prediction_id)
                raise JobStop(Stopped("ended during its create"))
        finally:
            self.creating.discard(job.id)
        if job.prediction_id is None:
            log.info("job %s running as prediction %s", job.id, prediction_id)
        return dataclasses.replace(
            job, status=JobStatus.RUNNING, prediction_id=prediction_id,
            started_at=job.started_at or now, deadline_at=job.deadline_at or deadline,
        )

    async def _local(self, request: JobRequest) -> JobRequest:
        """The request with its input files here (fetched when another instance made them)."""
        here = self.media.here
        return dataclasses.replace(
            request, image=str(await here(request.image)) if request.image else None,
            clip=str(await here(request.clip)) if request.clip else None)

    async def _wait(self, job: Job, *, reattach: bool) -> Prediction:
        assert job.prediction_id is not None
        prediction_id = job.prediction_id
        started = job.started_at or time.time()
        deadline = job.deadline_at or started + self.settings.timeout
        delay = self.settings.poll_initial
        last_progress = 0.0
        with self.inbox.watching(prediction_id):
            if reattach:  # it may have finished while we were down (its webhook lost)
                prediction = await self._poll(prediction_id)
                if prediction is not None and prediction.done:
                    return await self._check_outcome(job, prediction)
            while True:
                now = time.time()
                if now - last_progress >= self.settings.progress_every:
                    last_progress = now
                    await self._on_progress(job, now - started)
                remaining = deadline - now
                if remaining <= 0:
                    await self._time_out(job)
                wait = min(remaining, self.settings.progress_every)
                if self.settings.webhook_url:
                    wait = min(wait, self.settings.webhook_fallback)
                else:
                    wait = min(wait, delay)
                prediction = await self.inbox.wait(prediction_id, wait)
                if prediction is None and self._should_poll(started):
                    prediction = await self._poll(prediction_id)
                    delay = min(delay * 1.5, self._poll_ceiling())
                if prediction is not None and prediction.done:
                    return await self._check_outcome(job, prediction)

    def _poll_ceiling(self) -> float:
        """Longest wait between polls: grows with the jobs in flight so that all of
        them together stay near POLLS_PER_SECOND (the backend's request budget)."""
        return max(self.settings.poll_max, self._in_flight() / POLLS_PER_SECOND)

    def _should_poll(self, started: float) -> bool:
        if not self.settings.webhook_url:
            return True
        # With webhooks, polling is only the fallback for a webhook that never came.
        return time.time() - started >= self.settings.webhook_fallback

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
            self._on_request()
        return prediction

    async def _check_outcome(self, job: Job, prediction: Prediction) -> Prediction:
        if prediction.status == SUCCEEDED:
            return prediction
        detail = (prediction.error or prediction.status)[:300]
        ending: Ended
        if prediction.status == FAILED:
            rejected = any(word in detail.lower() for word in _REJECTION_WORDS)
            ending = failed(EndReason.REJECTED if rejected else EndReason.MODEL_ERROR, detail)
        elif prediction.status == CANCELED:
            ending = Ended(JobStatus.CANCELED, EndReason.CANCELED_BY_USER, detail)
        elif prediction.status == ABORTED:
            ending = failed(EndReason.ABORTED, detail)
        else:
            ending = failed(EndReason.MODEL_ERROR, f"unknown status {prediction.status}")
        raise JobStop(ending)

    async def _time_out(self, job: Job) -> None:
        if job.prediction_id:
            with contextlib.suppress(Exception):
                await self.backend.cancel(job.prediction_id)
        raise JobStop(Ended(
            JobStatus.TIMED_OUT, EndReason.TIMEOUT, f"no result within {self.settings.timeout:.0f}s"
        ))

    async def _fetch_output(self, job: Job, spec: ModelSpec, prediction: Prediction) -> Path:
        """Download the output at once (Replicate deletes it after an hour)."""
        dest = self.media.root / "outputs" / f"{job.id}{spec.output_suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)  # a worker may run steps without `start`
        for attempt in range(4):
            try:
                url = spec.read_output(prediction.output)
                await self.backend.download(url, dest, max_bytes=MAX_OUTPUT_BYTES)
                return dest
            except OutputMissing as exc:
                raise JobStop(failed(EndReason.MISSING_OUTPUT, str(exc))) from None
            except BackendError as exc:
                if not exc.retryable or attempt == 3:
                    raise JobStop(failed(EndReason.MISSING_OUTPUT, str(exc))) from None
                await asyncio.sleep(2**attempt)
        raise AssertionError("unreachable")
