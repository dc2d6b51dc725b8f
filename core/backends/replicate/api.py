"""Talking to Replicate's HTTP API: the official client, our request budget, retries.

Facts of the client (replicate 1.0.7) this module works around:
- POST is never retried by the client, and `predictions.async_create` sends its
  request with no deadline of its own: creates are bounded here (and retried by
  the backend, which resolves an ambiguous failure by a lookup, never a second
  create).
- The client's `Prediction` model has no `aborted` status, so its get, list and
  cancel raise on any page holding one. Those three calls are therefore made
  here as small HTTP calls of our own (`get_prediction`, `list_predictions`,
  `cancel_prediction`), on an httpx client that shares the official client's
  transport (one connection pool), base URL and token; answers are read as JSON.
  Everything else (creates, uploads, the webhook secret) uses the public client.
- The client retries its own GETs on 429/503/504; our own calls are not retried
  by it: the engine polls again, and lookups and cancels retry in `retrying`.
- We never use `async_run` (a create answering `processing` makes it return None)
  nor `async_wait` (no deadline of its own): the engine waits, under its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import importlib.metadata
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError

from core.backends.base import BackendError, PredictionLost
from core.backends.replicate.payloads import PREDICTION_ID, ModelRef
from core.errors import SharedStoreDown

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_API = "https://api.replicate.com"
WEBHOOK_EVENTS = ["completed"]


class Budget(Protocol):
    async def acquire(self) -> None:
        """Wait until one more request fits in the budget."""
        ...


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


class ReplicateApi:
    """The calls the backend makes, each within the request budget, with errors mapped."""

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
        max_attempts: int = 8,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        shared_creates: Budget | None = None,
    ) -> None:
        """`shared_creates`: the account's create budget over every instance (Redis), taken
        on top of this process's own; while it cannot be reached, this process's alone."""
        if not api_token:
            raise ValueError("a Replicate API token is required")
        self._token = api_token
        self.base_url = api_root(base_url)
        self.http_timeout = http_timeout
        self._upload_timeout = upload_timeout
        self.max_attempts = max(1, max_attempts)
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        timeout = httpx.Timeout(http_timeout, connect=min(10.0, http_timeout))
        hooks: dict[str, list[Callable[..., Any]]] = {"response": [_note_retry_after]}
        self._transport = httpx.AsyncHTTPTransport()
        self.client = Client(
            api_token=api_token, base_url=self.base_url, timeout=timeout,
            event_hooks=hooks, transport=self._transport,
        )
        # Our own calls (see the module docstring): same transport, URL and token.
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_token}",
                "User-Agent": f"replicate-python/{importlib.metadata.version('replicate')}",
            },
            timeout=timeout,
            event_hooks=hooks,
            transport=self._transport,
        )
        # A sixth of a minute's creates at once keeps any 60 s window under the
        # limit: 500/min + 83 burst < Replicate's 600/min.
        burst = create_burst if create_burst is not None else max_creates_per_minute / 6.0
        self._creates = TokenBucket(max_creates_per_minute / 60.0, max(1.0, burst))
        self._requests = TokenBucket(max_requests_per_second, max(1.0, max_requests_per_second))
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._shared_creates = shared_creates

    # -- the public client ---------------------------------------------------------------

    async def create_prediction(
        self, ref: ModelRef, inputs: dict[str, Any], webhook_url: str | None
    ) -> str:
        """One create request (never retried here); raises ReplicateError / httpx errors."""
        params: dict[str, Any] = {}
        if webhook_url:
            params = {"webhook": webhook_url, "webhook_events_filter": list(WEBHOOK_EVENTS)}
        await self._creates.acquire()
        if self._shared_creates is not None:
            try:
                await self._shared_creates.acquire()
            except SharedStoreDown as exc:  # a running job goes on, within our own budget
                log.warning("shared create budget unavailable (%s); using this process's", exc)
        await self._requests.acquire()
        async with self._in_flight:
            if ref.version:
                created = self.client.predictions.async_create(
                    version=ref.version, input=inputs, **params
                )
            else:
                created = self.client.predictions.async_create(
                    model=ref.slug, input=inputs, **params
                )
            # The client sends creates with no deadline of its own.
            prediction = await asyncio.wait_for(created, self.http_timeout)
        return str(prediction.id)

    async def upload(self, path: Path, metadata: Mapping[str, Any]) -> str:
        """Upload a file (retried: a repeat only leaves a spare file); its URL."""

        async def once() -> str:
            await self._requests.acquire()
            async with self._in_flight:
                created = await asyncio.wait_for(
                    self.client.files.async_create(path, metadata=dict(metadata)),
                    self._upload_timeout,
                )
            return str(created.urls["get"])

        return await self.retrying(f"upload {path.name}", once)

    async def webhook_secret(self) -> str:
        """The account's `whsec_…` signing secret (`GET /v1/webhooks/default/secret`)."""
        await self._requests.acquire()
        try:
            async with self._in_flight:
                secret = await asyncio.wait_for(
                    self.client.webhooks.default.async_secret(), self.http_timeout * 2
                )
        except ReplicateError as exc:
            raise self.error("webhook secret", exc, retryable=retryable(exc)) from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise BackendError(
                self.redact(f"webhook secret: {type(exc).__name__}"), retryable=True
            ) from None
        return str(secret.key)

    # -- our own calls (the client cannot read `aborted`) --------------------------------

    async def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        """`GET /v1/predictions/{id}` as JSON; `PredictionLost` when unknown."""
        _check_id(prediction_id)
        return await self._json("GET", f"/v1/predictions/{prediction_id}",
                                what=f"get prediction {prediction_id}")

    async def list_predictions(self, page_url: str | None = None) -> dict[str, Any]:
        """One page of `GET /v1/predictions` (newest first); `page_url` is a `next` link."""
        return await self._json("GET", page_url or "/v1/predictions", what="list predictions")

    async def cancel_prediction(self, prediction_id: str) -> None:
        """`POST /v1/predictions/{id}/cancel` (harmless when it already finished)."""
        _check_id(prediction_id)
        await self._json("POST", f"/v1/predictions/{prediction_id}/cancel",
                         what=f"cancel prediction {prediction_id}")

    async def _json(self, method: str, path: str, *, what: str) -> dict[str, Any]:
        await self._requests.acquire()
        try:
            async with self._in_flight:
                response = await asyncio.wait_for(
                    self._http.request(method, path), self.http_timeout * 3
                )
        except (httpx.TransportError, TimeoutError) as exc:
            raise BackendError(
                self.redact(f"{what}: {type(exc).__name__}"), retryable=True
            ) from None
        if response.status_code == 404:
            raise PredictionLost(self.redact(f"{what}: not found"), status=404)
        if response.status_code >= 400:
            refused = ReplicateError.from_response(response)
            raise self.error(
                what, refused, retryable=retryable(refused),
                retry_after=_parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            payload = response.json()
        except ValueError:
            raise BackendError(f"{what}: answer is not JSON", retryable=True) from None
        if not isinstance(payload, dict):
            raise BackendError(f"{what}: answer is not an object", retryable=True)
        return payload

    # -- retries and errors ----------------------------------------------------------------

    async def retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run an idempotent call, retrying throttling, 5xx and transport errors."""
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            delay: float | None = None
            try:
                with watch_retry_after() as seen:
                    return await call()
            except ReplicateError as exc:
                if exc.status == 404:
                    raise PredictionLost(self.redact(f"{what}: not found"), status=404) from None
                error = self.error(what, exc, retryable=retryable(exc))
                if not error.retryable or last:
                    raise error from None
                delay = retry_after_of(exc, seen)
            except BackendError as exc:
                if not exc.retryable or last:
                    raise
                delay = exc.retry_after
            except (httpx.TransportError, TimeoutError) as exc:
                if last:
                    raise BackendError(
                        self.redact(f"{what}: {type(exc).__name__}"), retryable=True
                    ) from None
            await asyncio.sleep(self.backoff(attempt, delay))
        raise AssertionError("unreachable")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and retry_after > 0:
            return min(retry_after, self._retry_max_delay)
        base = min(self._retry_base_delay * 2.0 ** (attempt - 1), self._retry_max_delay)
        return base * random.uniform(0.8, 1.2)

    def error(
        self, what: str, exc: ReplicateError, *, retryable: bool, retry_after: float | None = None
    ) -> BackendError:
        detail = exc.detail or exc.title or "no detail"
        return BackendError(
            self.redact(f"{what}: HTTP {exc.status}: {detail}"),
            retryable=retryable,
            status=exc.status,
            retry_after=retry_after,
        )

    def redact(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text

    async def close(self) -> None:
        # Closing our client closes the shared transport, the official client's too.
        await self._http.aclose()


def api_root(base_url: str) -> str:
    """The client adds `/v1/...` itself; accept settings that include it."""
    root = (base_url or DEFAULT_API).rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


def retryable(exc: ReplicateError) -> bool:
    status = exc.status or 0
    return status == 429 or status >= 500


def _check_id(prediction_id: str) -> None:
    if not PREDICTION_ID.match(prediction_id):
        raise PredictionLost(f"not a prediction id: {prediction_id!r}", status=404)


# ReplicateError keeps only the body, so a response hook notes the 429's
# retry-after header for the call running in the current task.
_retry_after_seen: ContextVar[dict[str, str] | None] = ContextVar("_retry_after_seen", default=None)


async def _note_retry_after(response: httpx.Response) -> None:
    seen = _retry_after_seen.get()
    if seen is not None and response.status_code == 429:
        seen["retry-after"] = response.headers.get("retry-after", "")


@contextlib.contextmanager
def watch_retry_after() -> Iterator[dict[str, str]]:
    seen: dict[str, str] = {}
    token = _retry_after_seen.set(seen)
    try:
        yield seen
    finally:
        _retry_after_seen.reset(token)


def retry_after_of(exc: ReplicateError, seen: Mapping[str, str]) -> float | None:
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
