"""Delivering a result: fit it to the chat, send it, retry what certainly did not arrive.

Every send is recorded before it is made. A send whose answer is lost may have
arrived: it is retried at most once (MAX_UNSURE_SENDS), after which the job counts as
delivered (unconfirmed); a job that may have reached the chat is never refunded. The
deliverer returns an outcome; `JobEngine.finish` records it and tells the chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from core import job_screens
from core.catalogue import ModelSpec
from core.engine.outcomes import Delivered, Outcome, Stopped, failed
from core.jobs import EndReason, Job, JobStatus, JobStore
from core.media_store import MediaStore
from core.notify import MaybeDelivered, NotDelivered, Notifier, OutputMedia, RecipientGone

log = logging.getLogger(__name__)

DELIVERY_ATTEMPTS = 5
# Sends that may have reached the chat: a lost answer is retried at most once, then the
# job counts as delivered (unconfirmed) and is never refunded.
MAX_UNSURE_SENDS = 2
DELIVERY_TIMEOUT = 600.0  # a send that has not answered by then may still have arrived

Fitter = Callable[[Path, int], Awaitable[OutputMedia]]


def crash_point(name: str) -> None:
    """Die like kill -9 here when a test armed this point (LOKIZ_CRASH_AT=after_send,...)."""
    armed = os.environ.get("LOKIZ_CRASH_AT")
    if armed and name in armed.split(","):
        log.warning("crash point %s armed: killing the process", name)
        os.kill(os.getpid(), signal.SIGKILL)


class Deliverer:
    """Sends a succeeded job's output into its chat, once."""

    def __init__(
        self,
        *,
        jobs: JobStore,
        notifiers: dict[str, Notifier],
        models: dict[str, ModelSpec],
        describe: Callable[[Job], str],
        fit_output: Fitter | None = None,
        delivery_timeout: float = DELIVERY_TIMEOUT,
        media: MediaStore | None = None,
    ) -> None:
        self.jobs = jobs
        self.notifiers = notifiers
        self.models = models
        self.describe = describe
        self.fit_output = fit_output
        self.delivery_timeout = delivery_timeout
        self.media = media

    async def deliver(self, job: Job) -> Outcome:
        """Send the result of `job` (as stored: status succeeded, its sends counted)."""
        notifier = self.notifiers.get(job.platform)
        if notifier is None:
            log.warning("job %s: no %s adapter running; will deliver when it is", job.id, job.platform)
            return Stopped(f"no {job.platform} adapter", retry=True)
        if job.status != JobStatus.SUCCEEDED:
            return Stopped("not waiting for delivery")
        what = self.describe(job)
        sends = job.delivery_sends
        # A send recorded by an earlier run may have arrived; a platform that drops
        # duplicates itself (Discord's nonce) needs no word about it.
        resent = sends > 0 and not getattr(notifier, "drops_duplicate_sends", False)
        output = Path(job.output_path or "")
        if self.media is not None and job.output_path:
            output = await self.media.here(job.output_path)  # made on another instance?
        if not output.is_file():
            return self._give_up(job, sends, "output file is gone")
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
                return Stopped("ended meanwhile")
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
                return failed(EndReason.UNDELIVERABLE, str(exc), tell=False)
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
            return Delivered(receipt.message_id, receipt.file_id)
        return self._give_up(job, sends, "delivery kept failing")

    def _give_up(self, job: Job, sends: int, detail: str) -> Outcome:
        """No confirmed delivery: refunded only when no send of it can have arrived."""
        if sends == 0:
            return failed(EndReason.UNDELIVERABLE, detail)
        log.warning("job %s: %s; a send may have arrived, so delivered (unconfirmed)", job.id, detail)
        return Delivered(None, None, unconfirmed=True)

    async def _media_for(self, job: Job, notifier: Notifier, output: Path) -> OutputMedia:
        spec = self.models[job.action]
        if spec.output_kind == "video" and self.fit_output is not None:
            return await self.fit_output(output, notifier.upload_limit(job))
        return OutputMedia(path=output, kind=spec.output_kind)
