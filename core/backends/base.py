"""The generation port: what the job engine needs from a backend.

A backend turns a `GenerationRequest` into a prediction that the engine can
poll, cancel and download. Replicate and the local ffmpeg backend implement it.

The port owns idempotency: `start(job_id, …)` is the one place that decides
between adopting the job's prediction and creating it, so a job never gets
two, whether `start` is called twice, retried after an unclear failure or
called again after a crash. It keeps its promise with a durable `StartLog`
(the job store): before the create request is sent the job is recorded as
`creating`, with its prepared inputs (the uploads' URLs, which a lookup can
match); the prediction id is stored as soon as it is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Replicate's prediction statuses; the local backend speaks the same words.
STARTING = "starting"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ABORTED = "aborted"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELED, ABORTED})

# Output URL schemes a backend may answer with (each backend downloads its own).
_OUTPUT_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class Prediction:
    """A backend's view of one prediction."""

    id: str
    status: str
    output: Any = None
    error: str | None = None
    logs: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate.

    action: the catalogue action (template, glitch_animate, glitch_replace, music).
    model: the model reference, `owner/name` or `owner/name:version`.
    inputs: the model's inputs by its schema names; `Path` values are local files to send.
    hints: what only the local renderer reads (e.g. `look`, `duration`); never sent to a model.
    """

    action: str
    model: str
    inputs: Mapping[str, Any]
    hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartRecord:
    """What is durably known about one job's prediction."""

    inputs: dict[str, Any] | None = None  # prepared (uploaded, JSON-safe) inputs
    creating_since: float | None = None  # epoch seconds: a create may have been sent since
    prediction_id: str | None = None


class StartLog(Protocol):
    """The durable record `start` keeps per job (the job store implements it).

    Each `record_*` is a compare-and-set on a job that still wants its
    prediction (queued or running) and answers False once the job has ended.
    """

    async def start_record(self, job_id: str) -> StartRecord | None:
        """The job's record; None when the job is unknown or has ended."""
        ...

    async def record_creating(self, job_id: str, inputs: dict[str, Any]) -> bool:
        """Before the create request: the prepared inputs, and that a create may follow."""
        ...

    async def record_created(self, job_id: str, prediction_id: str) -> bool:
        """The job's prediction id, as soon as it is known."""
        ...


class BackendError(Exception):
    """A backend call failed. `retryable` says whether trying again may help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after  # seconds the server asked us to wait, if it did


class PredictionLost(BackendError):
    """The backend no longer knows this prediction (e.g. local work lost in a restart)."""


class OutputMissing(BackendError):
    """The prediction succeeded but its output is absent, malformed or gone."""


class WebhookInvalid(BackendError):
    """A genuine (verified) webhook whose body is not a prediction."""


class WebhooksUnsupported(BackendError):
    """This backend receives no webhooks."""


class JobGone(Exception):
    """The job ended while its prediction was being started; nothing was left running."""


class Backend(Protocol):
    """The generation port: what the job engine calls."""

    name: str
    supports_webhooks: bool

    async def start(
        self,
        job_id: str,
        request: GenerationRequest,
        *,
        starts: StartLog,
        webhook_url: str | None = None,
    ) -> str:
        """The id of the job's one prediction: adopted when it exists, else created.

        Safe to call again for the same job, concurrently or after a crash.
        Raises `JobGone` when the job ended meanwhile, `BackendError` when the
        prediction could not be started (status 422: the model refused the input).
        """
        ...

    async def get(self, prediction_id: str) -> Prediction: ...

    async def cancel(self, prediction_id: str) -> None: ...

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream an output to `dest` (refusing more than `max_bytes`); return the path."""
        ...

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> Prediction:
        """A verified webhook delivery as a `Prediction`.

        Raises `core.webhooks.WebhookRejected` for a forged, stale or incomplete
        delivery, `WebhookInvalid` for a verified body that is not a prediction,
        and `BackendError` when deliveries cannot be verified now (no secret).
        """
        ...

    async def close(self) -> None: ...


class StartOnce:
    """`start` for every backend: the one place that decides adopt-or-create.

    A backend supplies three steps: `_prepare` (upload; JSON-safe inputs),
    `_find_created` (the prediction a create for this job may have made) and
    `_create` (one create, itself safe against ambiguous failures).
    """

    def __init__(self) -> None:
        self._start_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Creates in flight per job: they finish (and are recorded) even when the
        # caller is cancelled, and a later `start` for the job waits for them.
        self._creating: dict[str, asyncio.Task[str]] = {}

    async def start(
        self,
        job_id: str,
        request: GenerationRequest,
        *,
        starts: StartLog,
        webhook_url: str | None = None,
    ) -> str:
        """See `Backend.start`."""
        lock, users = self._start_locks.get(job_id, (asyncio.Lock(), 0))
        self._start_locks[job_id] = (lock, users + 1)
        try:
            async with lock:
                creating = self._creating.get(job_id)
                if creating is None:
                    begun = await self._begin(job_id, request, starts, webhook_url)
                    if isinstance(begun, str):
                        return begun
                    creating = begun
        finally:
            lock, users = self._start_locks[job_id]
            if users <= 1:
                del self._start_locks[job_id]
            else:
                self._start_locks[job_id] = (lock, users - 1)
        return await asyncio.shield(creating)

    async def _begin(
        self, job_id: str, request: GenerationRequest, starts: StartLog, webhook_url: str | None
    ) -> str | asyncio.Task[str]:
        """The known or adopted prediction id, or the task creating it."""
        record = await starts.start_record(job_id)
        if record is None:
            raise JobGone(job_id)
        if record.prediction_id:
            return record.prediction_id
        if record.creating_since is not None and record.inputs is not None:
            # A create may have gone through before a crash: find it before making one.
            inputs = record.inputs
            found = await self._find_created(job_id, request, inputs, record.creating_since)
            if found:
                log.warning("job %s: adopted prediction %s from before a restart", job_id, found)
                return await self._settle(job_id, found, starts)
        else:
            inputs = await self._prepare(job_id, request)
            if not await starts.record_creating(job_id, inputs):
                raise JobGone(job_id)
        task = asyncio.ensure_future(self._create_and_settle(job_id, request, inputs, webhook_url,
                                                             starts))
        self._creating[job_id] = task
        task.add_done_callback(lambda done: self._created(job_id, done))
        return task

    async def _create_and_settle(
        self,
        job_id: str,
        request: GenerationRequest,
        inputs: dict[str, Any],
        webhook_url: str | None,
        starts: StartLog,
    ) -> str:
        prediction_id = await self._create(job_id, request, inputs, webhook_url)
        return await self._settle(job_id, prediction_id, starts)

    def _created(self, job_id: str, task: asyncio.Task[str]) -> None:
        if self._creating.get(job_id) is task:
            del self._creating[job_id]
        if not task.cancelled():
            task.exception()  # retrieved here too: its caller may be gone

    async def _settle(self, job_id: str, prediction_id: str, starts: StartLog) -> str:
        """Store the id; a job that ended meanwhile gets its prediction cancelled."""
        if await starts.record_created(job_id, prediction_id):
            return prediction_id
        log.info("job %s ended while its prediction started; canceling %s", job_id, prediction_id)
        with contextlib.suppress(BackendError):
            await self.cancel(prediction_id)
        raise JobGone(job_id)

    async def _close_starts(self) -> None:
        """Let creates in flight finish and be recorded (bounded) before the backend closes."""
        if self._creating:
            await asyncio.wait(list(self._creating.values()), timeout=5)

    # -- what each backend supplies ------------------------------------------------------

    async def _prepare(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        raise NotImplementedError

    async def _find_created(
        self, job_id: str, request: GenerationRequest, inputs: dict[str, Any], since: float
    ) -> str | None:
        raise NotImplementedError

    async def _create(
        self,
        job_id: str,
        request: GenerationRequest,
        inputs: dict[str, Any],
        webhook_url: str | None,
    ) -> str:
        raise NotImplementedError

    async def cancel(self, prediction_id: str) -> None:
        raise NotImplementedError


class MemoryStartLog:
    """A `StartLog` kept in memory (one process; for tools and backend tests)."""

    def __init__(self) -> None:
        self.records: dict[str, StartRecord] = {}
        self.ended: set[str] = set()

    async def start_record(self, job_id: str) -> StartRecord | None:
        if job_id in self.ended:
            return None
        return self.records.setdefault(job_id, StartRecord())

    async def record_creating(self, job_id: str, inputs: dict[str, Any]) -> bool:
        return self._set(job_id, inputs=json.loads(json.dumps(inputs)), creating_since=time.time())

    async def record_created(self, job_id: str, prediction_id: str) -> bool:
        return self._set(job_id, prediction_id=prediction_id)

    def _set(self, job_id: str, **changes: Any) -> bool:
        if job_id in self.ended:
            return False
        current = self.records.get(job_id, StartRecord())
        self.records[job_id] = StartRecord(**{**current.__dict__, **changes})
        return True


# --- the one output extractor ---------------------------------------------------------


def extract_output_url(output: Any, key: str | None = None) -> str:
    """The one media URL in a model's output; `OutputMissing` when absent or malformed.

    Accepts a URL string, a list whose first item is one, or an object holding
    one under `key` (e.g. bark's `{"audio_out": URL}`; with no key, its only URL).
    URLs are http(s), file (the local backend) or data URIs.
    """
    value = output
    if isinstance(value, Mapping):
        if key is not None:
            value = value.get(key)
        else:
            urls = [item for item in value.values() if is_output_url(item)]
            value = urls[0] if len(urls) == 1 else None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if not is_output_url(value):
        raise OutputMissing(f"the model's output has no media URL ({_describe(output)})")
    assert isinstance(value, str)
    return value


def is_output_url(value: Any) -> bool:
    """An http(s) or file URL, or a data URI."""
    if not isinstance(value, str):
        return False
    if value.startswith("data:"):
        return "," in value
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme == "file":
        return bool(parsed.path)
    return parsed.scheme in _OUTPUT_SCHEMES and bool(parsed.netloc)


def _describe(output: Any) -> str:
    if output is None:
        return "no output"
    return f"got {json.dumps(output, default=str)[:80]}"


# --- per-job markers --------------------------------------------------------------------


def job_marker(job_id: str) -> int:
    """A stable 31-bit number from a job id, for a harmless per-job model input.

    A job with no uploaded file (music) is otherwise indistinguishable from
    another job with the same prompt; its marker lets `start` find its own
    prediction after a crash.
    """
    return int.from_bytes(hashlib.sha256(job_id.encode("utf-8")).digest()[:4], "big") >> 1
