"""The Replicate backend: predictions on replicate.com through the official client.

Facts of the client (replicate 1.0.7) this module works around:
- POST is never retried by the client, and `predictions.async_create` sends
  its request with no timeout at all: we bound it ourselves and retry, and an
  ambiguous failure (5xx, timeout, connection lost after sending) is resolved
  by looking the prediction up instead of creating a second one.
- The client's `Prediction` model rejects the status `aborted` (and so does
  every call that parses one: get, cancel, list), so reads go through the
  client's raw `_async_request` and `parse_prediction_payload`.
- GETs are retried inside the client on 429/503/504 (honouring retry-after);
  what still fails reaches us as `ReplicateError` with a status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import json
import logging
import os
import random
import re
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError

from core.backends.base import (
    BackendError,
    OutputMissing,
    Prediction,
    PredictionLost,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API = "https://api.replicate.com"
WEBHOOK_EVENTS = ["completed"]
_PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
# Official models answer with an internal model name (e.g. "replicate-internal/…").
_INTERNAL_OWNER = "replicate-internal/"
_MAX_DETAIL_READS = 20  # per lookup, when a listing omits inputs
_CHUNK = 1 << 16
_WRITE_BATCH = 1 << 20


class OutputTooLarge(OutputMissing):
    """The output is bigger than the caller accepts."""


# --- model references and payloads ------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """`owner/name` (official model) or `owner/name:version` (pinned community model)."""

    owner: str
    name: str
    version: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        match = re.fullmatch(r"([^/:\s]+)/([^/:\s]+)(?::([A-Za-z0-9._-]+))?", ref.strip())
        if not match:
            raise BackendError(f"not a Replicate model reference: {ref!r}")
        return cls(match.group(1), match.group(2), match.group(3))

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"


def parse_prediction_payload(payload: Mapping[str, Any]) -> Prediction:
    """A prediction JSON object (a GET answer or a webhook body) as a `Prediction`.

    The status is taken as sent — including `aborted`, which the client's own
    model cannot represent.
    """
    if not isinstance(payload, Mapping):
        raise BackendError("prediction payload is not an object")
    prediction_id = payload.get("id")
    status = payload.get("status")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise BackendError("prediction payload has no id")
    if not isinstance(status, str) or not status:
        raise BackendError(f"prediction {prediction_id} has no status")
    error = payload.get("error")
    logs = payload.get("logs")
    metrics = payload.get("metrics")
    return Prediction(
        id=prediction_id,
        status=status.strip().lower(),
        output=payload.get("output"),
        error=None if error in (None, "") else str(error),
        logs=logs if isinstance(logs, str) else "",
        metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
    )


def extract_output_url(output: Any, key: str | None = None) -> str:
    """The one media URL in a model's output; `OutputMissing` when absent or malformed.

    Accepts a URL string, a list whose first item is one, or an object holding
    one under `key` (e.g. bark's `{"audio_out": URL}`; with no key, its only URL).
    """
    value = output
    if isinstance(value, Mapping):
        if key is not None:
            value = value.get(key)
        else:
            urls = [item for item in value.values() if _is_media_url(item)]
            value = urls[0] if len(urls) == 1 else None
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    if not _is_media_url(value):
        raise OutputMissing(f"the model's output has no media URL ({_describe(output)})")
    assert isinstance(value, str)
    return value


def _is_media_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("data:"):
        return "," in value
    parsed = urllib.parse.urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _describe(output: Any) -> str:
    if output is None:
        return "no output"
    text = json.dumps(output, default=str)
    return f"got {text[:80]}"


# --- request budget ---------------------------------------------------------------


class TokenBucket:
    """An async token bucket: `rate` tokens per second, at most `capacity` saved up.

    Waiters are served in arrival order, so a burst of pollers cannot starve a create.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._updated = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)


# --- the backend ------------------------------------------------------------------


class ReplicateBackend:
    """Runs predictions on Replicate (or anything speaking its HTTP API)."""

    name = "replicate"
    supports_webhooks = True

    def __init__(
        self,
        api_token: str,
        base_url: str = DEFAULT_API,
        *,
        max_creates_per_minute: int = 500,
        create_burst: int | None = None,
        max_requests_per_second: float = 40.0,
        max_in_flight: int = 32,
        http_timeout: float = 30.0,
        upload_timeout: float = 300.0,
        download_timeout: float = 300.0,
        max_create_attempts: int = 8,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        lookup_delay: float = 1.0,
        lookup_pages: int = 2,
    ) -> None:
        if not api_token:
            raise ValueError("a Replicate API token is required")
        self._token = api_token
        self._base_url = _api_root(base_url)
        self._http_timeout = http_timeout
        self._upload_timeout = upload_timeout
        self._download_timeout = download_timeout
        self._max_create_attempts = max(1, max_create_attempts)
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._lookup_delay = lookup_delay
        self._lookup_pages = max(1, lookup_pages)
        self._client = Client(
            api_token=api_token,
            base_url=self._base_url,
            timeout=httpx.Timeout(http_timeout, connect=min(10.0, http_timeout)),
            event_hooks={"response": [_note_retry_after]},
        )
        # A sixth of a minute's creates at once keeps any 60 s window under the
        # limit: 500/min + 83 burst < Replicate's 600/min.
        burst = create_burst if create_burst is not None else max_creates_per_minute / 6.0
        self._creates = TokenBucket(max_creates_per_minute / 60.0, max(1.0, burst))
        self._requests = TokenBucket(max_requests_per_second, max(1.0, max_requests_per_second))
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._downloads = httpx.AsyncClient(
            timeout=httpx.Timeout(http_timeout, connect=min(10.0, http_timeout)),
            follow_redirects=True,
        )
        self._claimed: set[str] = set()  # prediction ids this backend created or adopted
        self._uncertain_jobs: set[str] = set()  # jobs whose create may have happened
        self._secret: str | None = None

    def __repr__(self) -> str:
        return f"ReplicateBackend(base_url={self._base_url!r})"

    # -- files -----------------------------------------------------------------------

    async def prepare(self, job_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Upload every `Path` value as a Replicate file and use its URL instead.

        Keys starting with `_` (hints for the local backend) are dropped. The
        result is JSON-safe; store it, and pass the same dict to `create` and
        `find_existing`.
        """
        prepared: dict[str, Any] = {}
        uploaded: dict[Path, str] = {}
        for key, value in inputs.items():
            if key.startswith("_"):
                continue
            if isinstance(value, Path):
                if value not in uploaded:
                    uploaded[value] = await self._upload(job_id, value)
                prepared[key] = uploaded[value]
            else:
                prepared[key] = _json_safe(key, value)
        return prepared

    async def _upload(self, job_id: str, path: Path) -> str:
        if not await asyncio.to_thread(path.is_file):
            raise BackendError(f"input file {path.name} does not exist")

        async def upload() -> str:
            await self._requests.acquire()
            async with self._in_flight:
                created = await asyncio.wait_for(
                    self._client.files.async_create(path, metadata={"job_id": job_id}),
                    self._upload_timeout,
                )
            return str(created.urls["get"])

        # An upload repeated after an unclear failure only leaves a spare file behind.
        return await self._retrying(f"upload {path.name}", upload)

    # -- predictions -----------------------------------------------------------------

    async def create(
        self, job_id: str, model: str, inputs: dict[str, Any], *, webhook_url: str | None = None
    ) -> str:
        """Start a prediction and return its id, never two for one job.

        429 and connection refusals are retried with backoff (honouring
        retry-after). After an ambiguous failure the prediction may exist: it
        is looked up by model and input and adopted instead of created again.
        """
        ref = ModelRef.parse(model)
        _reject_local_paths(inputs)
        since = datetime.now(UTC) - timedelta(minutes=2)  # allow for clock skew
        if job_id in self._uncertain_jobs:
            found = await self.find_existing(
                model, inputs, created_after=since - timedelta(hours=1)
            )
            if found:
                return self._adopt(job_id, found)

        last_error: BackendError | None = None
        for attempt in range(1, self._max_create_attempts + 1):
            delay: float | None = None
            try:
                with _watch_retry_after() as seen:
                    prediction_id = await self._create_once(ref, inputs, webhook_url)
            except ReplicateError as exc:
                status = exc.status or 0
                last_error = self._error("create", exc, retryable=status == 429 or status >= 500)
                if status == 429:
                    delay = _retry_after_of(exc, seen)
                elif status < 500:
                    raise last_error from None
                else:
                    found = await self._after_ambiguous(job_id, model, inputs, since)
                    if found:
                        return found
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the server.
                last_error = BackendError(self._redact(f"create: {exc!r}"), retryable=True)
            except (httpx.TransportError, TimeoutError, ValueError) as exc:
                # Sent, but we do not know what happened: timeouts, a dropped connection,
                # or an answer the client could not parse (e.g. status "aborted").
                last_error = BackendError(
                    self._redact(f"create: {type(exc).__name__}"), retryable=True
                )
                found = await self._after_ambiguous(job_id, model, inputs, since)
                if found:
                    return found
            else:
                self._uncertain_jobs.discard(job_id)
                self._claimed.add(prediction_id)
                log.info("job %s: created prediction %s on %s", job_id, prediction_id, ref.slug)
                return prediction_id
            if attempt < self._max_create_attempts:
                await asyncio.sleep(self._backoff(attempt, delay))
        assert last_error is not None
        raise last_error

    async def _create_once(
        self, ref: ModelRef, inputs: dict[str, Any], webhook_url: str | None
    ) -> str:
        params: dict[str, Any] = {}
        if webhook_url:
            params = {"webhook": webhook_url, "webhook_events_filter": list(WEBHOOK_EVENTS)}
        await self._creates.acquire()
        await self._requests.acquire()
        async with self._in_flight:
            if ref.version:
                created = self._client.predictions.async_create(
                    version=ref.version, input=inputs, **params
                )
            else:
                created = self._client.predictions.async_create(
                    model=ref.slug, input=inputs, **params
                )
            # The client sends creates with no timeout of its own.
            prediction = await asyncio.wait_for(created, self._http_timeout)
        return str(prediction.id)

    async def _after_ambiguous(
        self, job_id: str, model: str, inputs: dict[str, Any], since: datetime
    ) -> str | None:
        self._uncertain_jobs.add(job_id)
        # The list may lag the create by a moment.
        for pause in (self._lookup_delay * 0.25, self._lookup_delay):
            await asyncio.sleep(pause)
            try:
                found = await self.find_existing(model, inputs, created_after=since)
            except BackendError as exc:
                log.warning("job %s: looking up an unclear create failed: %s", job_id, exc)
                continue
            if found:
                return self._adopt(job_id, found)
        return None

    def _adopt(self, job_id: str, prediction_id: str) -> str:
        log.warning("job %s: adopted prediction %s after an unclear create", job_id, prediction_id)
        self._uncertain_jobs.discard(job_id)
        self._claimed.add(prediction_id)
        return prediction_id

    async def find_existing(
        self,
        model: str,
        inputs: dict[str, Any],
        *,
        created_after: datetime | None = None,
    ) -> str | None:
        """The newest recent prediction of `model` with exactly `inputs`, if any.

        Scans the first pages of `GET /v1/predictions` (newest first), skipping
        predictions this backend already handed out for other jobs.
        """
        ref = ModelRef.parse(model)
        wanted = _canonical(inputs)
        path: str = "/v1/predictions"
        detail_reads = 0
        for _ in range(self._lookup_pages):
            page = await self._request_json("GET", path, what="list predictions")
            results = page.get("results")
            if not isinstance(results, list):
                raise BackendError("list predictions: malformed answer", retryable=True)
            for item in results:
                if not isinstance(item, Mapping):
                    continue
                created_at = _parse_time(item.get("created_at"))
                if created_after and created_at and created_at < created_after:
                    return None  # newest first: the rest is older still
                prediction_id = item.get("id")
                if not isinstance(prediction_id, str) or prediction_id in self._claimed:
                    continue
                if not _same_model(ref, item):
                    continue
                item_input = item.get("input")
                if item_input is None and detail_reads < _MAX_DETAIL_READS:
                    # Some listings omit inputs; read the prediction itself.
                    detail_reads += 1
                    try:
                        full = await self._request_json(
                            "GET", f"/v1/predictions/{prediction_id}", what="get prediction"
                        )
                    except PredictionLost:
                        continue
                    item_input = full.get("input")
                if isinstance(item_input, Mapping) and _canonical(item_input) == wanted:
                    return prediction_id
            next_url = page.get("next")
            # Follow only our own API: the token goes wherever `next` points.
            if not isinstance(next_url, str) or not next_url.startswith(self._base_url + "/"):
                return None
            path = next_url
        return None

    async def get(self, prediction_id: str) -> Prediction:
        """The prediction's current state; `PredictionLost` when Replicate does not know it."""
        if not _PREDICTION_ID.match(prediction_id):
            raise PredictionLost(f"not a prediction id: {prediction_id!r}", status=404)
        payload = await self._request_json(
            "GET", f"/v1/predictions/{prediction_id}", what=f"get prediction {prediction_id}"
        )
        return parse_prediction_payload(payload)

    async def cancel(self, prediction_id: str) -> None:
        """Ask Replicate to stop a prediction (harmless when it already finished)."""
        if not _PREDICTION_ID.match(prediction_id):
            raise PredictionLost(f"not a prediction id: {prediction_id!r}", status=404)

        async def cancel_once() -> None:
            await self._request_json(
                "POST",
                f"/v1/predictions/{prediction_id}/cancel",
                what=f"cancel prediction {prediction_id}",
            )

        await self._retrying(f"cancel {prediction_id}", cancel_once)

    async def webhook_secret(self) -> str:
        """The account's `whsec_…` signing secret (`GET /v1/webhooks/default/secret`)."""
        if self._secret is None:
            await self._requests.acquire()
            try:
                async with self._in_flight:
                    secret = await asyncio.wait_for(
                        self._client.webhooks.default.async_secret(), self._http_timeout * 2
                    )
            except ReplicateError as exc:
                raise self._error("webhook secret", exc, retryable=_retryable(exc)) from None
            except (httpx.TransportError, TimeoutError) as exc:
                raise BackendError(
                    self._redact(f"webhook secret: {type(exc).__name__}"), retryable=True
                ) from None
            self._secret = str(secret.key)
        return self._secret

    # -- outputs ---------------------------------------------------------------------

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream an output file to `dest` (via a temporary file), at most `max_bytes`."""
        if not isinstance(output_url, str) or not _is_media_url(output_url):
            raise OutputMissing(f"not an output URL: {str(output_url)[:80]!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if output_url.startswith("data:"):
            data = _decode_data_uri(output_url)
            if len(data) > max_bytes:
                raise OutputTooLarge(f"output is {len(data)} bytes, over {max_bytes}")
            await asyncio.to_thread(_write_atomically, dest, data)
            return dest
        try:
            return await asyncio.wait_for(
                self._stream_to(output_url, dest, max_bytes), self._download_timeout
            )
        except TimeoutError:
            raise BackendError("download timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise BackendError(
                self._redact(f"download failed: {type(exc).__name__}"), retryable=True
            ) from None

    async def _stream_to(self, url: str, dest: Path, max_bytes: int) -> Path:
        async with self._downloads.stream("GET", url) as response:
            status = response.status_code
            if status in (403, 404, 410):
                raise OutputMissing(f"output is gone (HTTP {status})", status=status)
            if status == 429 or status >= 500:
                raise BackendError(f"download: HTTP {status}", retryable=True, status=status)
            if status >= 400:
                raise OutputMissing(f"output refused (HTTP {status})", status=status)
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise OutputTooLarge(f"output is {length} bytes, over {max_bytes}")
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    size = 0
                    pending = bytearray()
                    async for chunk in response.aiter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise OutputTooLarge(f"output is over {max_bytes} bytes")
                        pending += chunk
                        if len(pending) >= _WRITE_BATCH:
                            await asyncio.to_thread(out.write, bytes(pending))
                            pending.clear()
                    if pending:
                        await asyncio.to_thread(out.write, bytes(pending))
                if size == 0:
                    raise OutputMissing("output is empty")
                _move(tmp, dest)
            except BaseException:
                _discard(tmp)
                raise
        return dest

    async def close(self) -> None:
        await self._downloads.aclose()
        await self._client._async_client.aclose()

    # -- plumbing --------------------------------------------------------------------

    async def _request_json(self, method: str, path: str, *, what: str) -> dict[str, Any]:
        """One API call through the client's raw request, with our budget and errors."""
        await self._requests.acquire()
        try:
            async with self._in_flight:
                # The client itself retries GETs on 429/503/504; bound the whole call.
                response = await asyncio.wait_for(
                    self._client._async_request(method, path), self._http_timeout * 3
                )
        except ReplicateError as exc:
            if exc.status == 404:
                raise PredictionLost(self._redact(f"{what}: not found"), status=404) from None
            raise self._error(what, exc, retryable=_retryable(exc)) from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise BackendError(
                self._redact(f"{what}: {type(exc).__name__}"), retryable=True
            ) from None
        try:
            payload = response.json()
        except ValueError:
            raise BackendError(f"{what}: answer is not JSON", retryable=True) from None
        if not isinstance(payload, dict):
            raise BackendError(f"{what}: answer is not an object", retryable=True)
        return payload

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent call, retrying throttling, 5xx and transport errors.

        `call` takes its own request token.
        """
        for attempt in range(1, self._max_create_attempts + 1):
            last = attempt == self._max_create_attempts
            delay: float | None = None
            try:
                with _watch_retry_after() as seen:
                    return await call()
            except ReplicateError as exc:
                if exc.status == 404:
                    raise PredictionLost(self._redact(f"{what}: not found"), status=404) from None
                error = self._error(what, exc, retryable=_retryable(exc))
                if not error.retryable or last:
                    raise error from None
                delay = _retry_after_of(exc, seen)
            except BackendError as exc:
                if not exc.retryable or last:
                    raise
            except (httpx.TransportError, TimeoutError) as exc:
                if last:
                    raise BackendError(
                        self._redact(f"{what}: {type(exc).__name__}"), retryable=True
                    ) from None
            await asyncio.sleep(self._backoff(attempt, delay))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self._retry_max_delay)
        base = min(self._retry_base_delay * 2.0 ** (attempt - 1), self._retry_max_delay)
        return base * random.uniform(0.8, 1.2)

    def _error(self, what: str, exc: ReplicateError, *, retryable: bool) -> BackendError:
        detail = exc.detail or exc.title or "no detail"
        return BackendError(
            self._redact(f"{what}: HTTP {exc.status}: {detail}"),
            retryable=retryable,
            status=exc.status,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text


# --- helpers ----------------------------------------------------------------------


def _api_root(base_url: str) -> str:
    """The client adds `/v1/...` itself; accept settings that include it."""
    root = (base_url or DEFAULT_API).rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


def _retryable(exc: ReplicateError) -> bool:
    status = exc.status or 0
    return status == 429 or status >= 500


# ReplicateError keeps only the body, so a response hook notes the 429's
# retry-after header for the call running in the current task.
_retry_after_seen: ContextVar[dict[str, str] | None] = ContextVar("_retry_after_seen", default=None)


async def _note_retry_after(response: httpx.Response) -> None:
    seen = _retry_after_seen.get()
    if seen is not None and response.status_code == 429:
        seen["retry-after"] = response.headers.get("retry-after", "")


@contextlib.contextmanager
def _watch_retry_after() -> Iterator[dict[str, str]]:
    seen: dict[str, str] = {}
    token = _retry_after_seen.set(seen)
    try:
        yield seen
    finally:
        _retry_after_seen.reset(token)


def _retry_after_of(exc: ReplicateError, seen: Mapping[str, str]) -> float | None:
    """Seconds to wait after a 429: its retry-after header, else a hint in the detail."""
    delay = _parse_retry_after(seen.get("retry-after"))
    if delay is None and exc.detail:
        match = re.search(r"(\d+(?:\.\d+)?)\s*second", exc.detail)
        delay = _parse_retry_after(match.group(1)) if match else None
    return delay


def _parse_retry_after(raw: Any) -> float | None:
    if raw is None or not str(raw).strip():
        return None
    text = str(raw).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _same_model(ref: ModelRef, item: Mapping[str, Any]) -> bool:
    listed_model = item.get("model")
    listed_version = item.get("version")
    if ref.version:
        return listed_version == ref.version or listed_version == f"{ref.slug}:{ref.version}"
    return listed_model == ref.slug or (
        isinstance(listed_model, str) and listed_model.startswith(_INTERNAL_OWNER)
    )


def _canonical(inputs: Mapping[str, Any]) -> str:
    return json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)


def _json_safe(key: str, value: Any) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise BackendError(f"input {key!r} is not JSON-safe") from None
    return value


def _reject_local_paths(inputs: Mapping[str, Any]) -> None:
    for key, value in inputs.items():
        if isinstance(value, Path):
            raise BackendError(f"input {key!r} is a local file; call prepare() first")


def _decode_data_uri(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    try:
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return urllib.parse.unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise OutputMissing("output data URI is malformed") from None


def _move(tmp: Path, dest: Path) -> None:
    tmp.replace(dest)


def _discard(tmp: Path) -> None:
    tmp.unlink(missing_ok=True)


def _write_atomically(dest: Path, data: bytes) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        Path(tmp_name).replace(dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
