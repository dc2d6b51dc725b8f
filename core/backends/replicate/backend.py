"""The Replicate backend: predictions on replicate.com through the official client.

`start` (from the port) decides adopt-or-create; this module supplies its
steps: uploads, the lookup of a prediction a create may have made, and one
create that survives 429 storms and ambiguous failures (5xx, timeouts, a
connection lost after sending) by looking the prediction up instead of
creating a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from replicate.exceptions import ReplicateError

from core.backends.base import (
    BackendError,
    GenerationRequest,
    Prediction,
    PredictionLost,
    StartOnce,
)
from core.backends.replicate.api import (
    DEFAULT_API,
    Budget,
    ReplicateApi,
    retry_after_of,
    watch_retry_after,
)
from core.backends.replicate.files import Downloader, upload_inputs
from core.backends.replicate.payloads import (
    ModelRef,
    canonical,
    parse_prediction_payload,
    parse_time,
    reject_local_paths,
    same_model,
)
from core.backends.replicate.webhooks import WebhookReader

if TYPE_CHECKING:
    from core.media_store import MediaStore

log = logging.getLogger(__name__)

_MAX_DETAIL_READS = 20  # per lookup, when a listing omits inputs
_CLOCK_SKEW = timedelta(minutes=2)


class ReplicateBackend(StartOnce):
    """Runs predictions on Replicate (or anything speaking its HTTP API)."""

    name = "replicate"
    supports_webhooks = True

    def __init__(
        self,
        api_token: str,
        base_url: str = DEFAULT_API,
        *,
        webhook_secret: str | None = None,
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
        media: MediaStore | None = None,
        shared_creates: Budget | None = None,
    ) -> None:
        super().__init__()
        self._media = media  # a public bucket (MEDIA_PUBLIC): presigned URLs, no uploads
        self._api = ReplicateApi(
            api_token, base_url,
            max_creates_per_minute=max_creates_per_minute, create_burst=create_burst,
            max_requests_per_second=max_requests_per_second, max_in_flight=max_in_flight,
            http_timeout=http_timeout, upload_timeout=upload_timeout,
            max_attempts=max_create_attempts, retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay, shared_creates=shared_creates,
        )
        self._downloads = Downloader(
            http_timeout=http_timeout, download_timeout=download_timeout, redact=self._api.redact
        )
        self._webhooks = WebhookReader(webhook_secret, self._api.webhook_secret)
        self._lookup_delay = lookup_delay
        self._lookup_pages = max(1, lookup_pages)
        self._claimed: dict[str, str] = {}  # prediction id -> the job it was handed to

    def __repr__(self) -> str:
        return f"ReplicateBackend(base_url={self._api.base_url!r})"

    # -- the port's steps ------------------------------------------------------------------

    async def _prepare(self, job_id: str, request: GenerationRequest) -> dict[str, Any]:
        return await self.prepare(job_id, dict(request.inputs))

    async def _find_created(
        self, job_id: str, request: GenerationRequest, inputs: dict[str, Any], since: float
    ) -> str | None:
        created_after = datetime.fromtimestamp(since, UTC) - _CLOCK_SKEW

        async def lookup() -> str | None:
            return await self.find_existing(
                request.model, inputs, created_after=created_after, job_id=job_id
            )

        found = await self._api.retrying(f"look up job {job_id}'s prediction", lookup)
        if found:
            self._claimed[found] = job_id
        return found

    async def _create(
        self,
        job_id: str,
        request: GenerationRequest,
        inputs: dict[str, Any],
        webhook_url: str | None,
    ) -> str:
        return await self.create(job_id, request.model, inputs, webhook_url=webhook_url)

    # -- files -----------------------------------------------------------------------------

    async def prepare(self, job_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Upload every `Path` value as a Replicate file and use its URL instead."""
        return await upload_inputs(self._api, job_id, inputs, self._media)

    async def download(self, output_url: str, dest: Path, *, max_bytes: int) -> Path:
        """Stream an output file to `dest` (via a temporary file), at most `max_bytes`."""
        return await self._downloads.download(output_url, dest, max_bytes=max_bytes)

    # -- predictions -----------------------------------------------------------------------

    async def create(
        self, job_id: str, model: str, inputs: dict[str, Any], *, webhook_url: str | None = None
    ) -> str:
        """One create for the job, surviving 429s and ambiguous failures; its prediction id.

        429 and connection refusals are retried with backoff (honouring
        retry-after). After an ambiguous failure the prediction may exist: it
        is looked up by model and inputs and adopted instead of created again.
        """
        ref = ModelRef.parse(model)
        reject_local_paths(inputs)
        since = datetime.now(UTC) - _CLOCK_SKEW
        last_error: BackendError | None = None
        for attempt in range(1, self._api.max_attempts + 1):
            delay: float | None = None
            try:
                with watch_retry_after() as seen:
                    prediction_id = await self._api.create_prediction(ref, inputs, webhook_url)
            except ReplicateError as exc:
                status = exc.status or 0
                last_error = self._api.error(
                    "create", exc, retryable=status == 429 or status >= 500
                )
                if status == 429:
                    delay = retry_after_of(exc, seen)
                elif status < 500:
                    raise last_error from None
                else:
                    found = await self._after_ambiguous(job_id, model, inputs, since)
                    if found:
                        return found
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the server.
                last_error = BackendError(self._api.redact(f"create: {exc!r}"), retryable=True)
            except (httpx.TransportError, TimeoutError, ValueError) as exc:
                # Sent, but we do not know what happened: timeouts, a dropped connection,
                # or an answer the client could not parse (e.g. status "aborted").
                last_error = BackendError(
                    self._api.redact(f"create: {type(exc).__name__}"), retryable=True
                )
                found = await self._after_ambiguous(job_id, model, inputs, since)
                if found:
                    return found
            else:
                self._claimed[prediction_id] = job_id
                log.info("job %s: created prediction %s on %s", job_id, prediction_id, ref.slug)
                return prediction_id
            if attempt < self._api.max_attempts:
                await asyncio.sleep(self._api.backoff(attempt, delay))
        assert last_error is not None
        raise last_error

    async def _after_ambiguous(
        self, job_id: str, model: str, inputs: dict[str, Any], since: datetime
    ) -> str | None:
        # The list may lag the create by a moment.
        for pause in (self._lookup_delay * 0.25, self._lookup_delay):
            await asyncio.sleep(pause)
            try:
                found = await self.find_existing(
                    model, inputs, created_after=since, job_id=job_id
                )
            except BackendError as exc:
                log.warning("job %s: looking up an unclear create failed: %s", job_id, exc)
                continue
            if found:
                log.warning("job %s: adopted prediction %s after an unclear create", job_id, found)
                self._claimed[found] = job_id
                return found
        return None

    async def find_existing(
        self,
        model: str,
        inputs: Mapping[str, Any],
        *,
        created_after: datetime | None = None,
        job_id: str | None = None,
    ) -> str | None:
        """The newest recent prediction of `model` with exactly `inputs`, if any.

        Scans the first pages of `GET /v1/predictions` (newest first), skipping
        predictions this backend already handed out to jobs other than `job_id`.
        """
        ref = ModelRef.parse(model)
        wanted = canonical(inputs)
        page_url: str | None = None
        detail_reads = 0
        for _ in range(self._lookup_pages):
            page = await self._api.list_predictions(page_url)
            results = page.get("results")
            if not isinstance(results, list):
                raise BackendError("list predictions: malformed answer", retryable=True)
            for item in results:
                if not isinstance(item, Mapping):
                    continue
                created_at = parse_time(item.get("created_at"))
                if created_after and created_at and created_at < created_after:
                    return None  # newest first: the rest is older still
                prediction_id = item.get("id")
                if not isinstance(prediction_id, str):
                    continue
                if self._claimed.get(prediction_id, job_id) != job_id:
                    continue
                if not same_model(ref, item):
                    continue
                item_input = item.get("input")
                if item_input is None and detail_reads < _MAX_DETAIL_READS:
                    # Some listings omit inputs; read the prediction itself.
                    detail_reads += 1
                    try:
                        item_input = (await self._api.get_prediction(prediction_id)).get("input")
                    except PredictionLost:
                        continue
                if isinstance(item_input, Mapping) and canonical(item_input) == wanted:
                    return prediction_id
            next_url = page.get("next")
            # Follow only our own API: the token goes wherever `next` points.
            if not isinstance(next_url, str) or not next_url.startswith(self._api.base_url + "/"):
                return None
            page_url = next_url
        return None

    async def get(self, prediction_id: str) -> Prediction:
        """The prediction's current state; `PredictionLost` when Replicate does not know it."""
        return parse_prediction_payload(await self._api.get_prediction(prediction_id))

    async def cancel(self, prediction_id: str) -> None:
        """Ask Replicate to stop a prediction (harmless when it already finished)."""

        async def cancel_once() -> None:
            await self._api.cancel_prediction(prediction_id)

        await self._api.retrying(f"cancel {prediction_id}", cancel_once)

    # -- webhooks --------------------------------------------------------------------------

    async def webhook_secret(self) -> str:
        """The `whsec_…` secret deliveries are signed with (configured, or from the API)."""
        return await self._webhooks.secret()

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> Prediction:
        """See `Backend.parse_webhook`."""
        return await self._webhooks.parse(headers, body)

    async def close(self) -> None:
        await self._close_starts()
        await self._downloads.close()
        await self._api.close()
