"""What a job's status message says, and how often: pacing, screens and estimates.

The reporter is handed the `Job` it speaks of and re-reads nothing; it remembers the
status message id each chat answered with, so later edits go to the same message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from core import job_screens
from core.catalogue import ModelSpec, TemplateCatalogue
from core.jobs import Job, JobStore
from core.notify import Notifier, RecipientGone
from core.screens import Screen

log = logging.getLogger(__name__)

STATUS_INTERVAL = 3.0  # at most one status edit per message per 3 s


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


class StatusReporter:
    """Puts a job's state on its status message, paced, in the user's language."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        notifiers: dict[str, Notifier],
        models: dict[str, ModelSpec],
        templates: TemplateCatalogue | None,
        interval: float = STATUS_INTERVAL,
    ) -> None:
        self._jobs = jobs
        self._notifiers = notifiers
        self._models = models
        self._templates = templates
        self.pacer = StatusPacer(self._send, interval)
        self._latest: dict[str, Job] = {}
        self._message_ids: dict[str, str] = {}
        self._estimates: dict[str, float] = {}

    def what(self, job: Job) -> str:
        """What the job makes, in the user's words."""
        return job_screens.describe(job, self._templates, job.language)

    async def queued(self, job: Job, position: int) -> None:
        await self._show(job, job_screens.queued_screen(job, self.what(job), position))

    async def running(self, job: Job, elapsed: float) -> None:
        estimate = await self.estimate(job.model)
        await self._show(job, job_screens.running_screen(job, self.what(job), elapsed, estimate))

    async def sending(self, job: Job) -> None:
        await self._show(job, job_screens.sending_screen(job, self.what(job)))

    async def done(self, job: Job, post_id: int | None = None) -> None:
        await self._show(job, job_screens.done_screen(job, self.what(job), post_id), final=True)

    async def ended(self, job: Job, reason: str, refunded: int) -> None:
        screen = job_screens.failed_screen(job, self.what(job), reason, refunded)
        await self._show(job, screen, final=True)

    async def estimate(self, model: str) -> float:
        """Typical generation time of `model`, learned from its recent finished jobs."""
        if model not in self._estimates:
            learned = await self._jobs.recent_run_seconds(model)
            default = next(
                (spec.typical_seconds for spec in self._models.values() if spec.model_id == model),
                60.0,
            )
            self._estimates[model] = learned if learned is not None else default
        return self._estimates[model]

    def learned(self, model: str) -> None:
        """A job of `model` finished: learn its time again on the next estimate."""
        self._estimates.pop(model, None)

    async def close(self) -> None:
        await self.pacer.close()

    async def _show(self, job: Job, screen: Screen, *, final: bool = False) -> None:
        self._latest[job.id] = job
        await self.pacer.update(job.id, screen, final=final)
        if final:
            self._latest.pop(job.id, None)
            self._message_ids.pop(job.id, None)

    async def _send(self, job_id: str, screen: Screen) -> None:
        job = self._latest.get(job_id)
        if job is None:
            return
        notifier = self._notifiers.get(job.platform)
        if notifier is None:
            return
        known = self._message_ids.get(job_id, job.status_message_id)
        if known != job.status_message_id:
            job = dataclasses.replace(job, status_message_id=known)
        try:
            message_id = await notifier.show_status(job, screen)
        except RecipientGone:
            return
        if message_id and message_id != known:
            self._message_ids[job_id] = message_id
            await self._jobs.set_status_message(job.id, message_id)
