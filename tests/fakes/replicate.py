"""A fake Replicate HTTP API on 127.0.0.1 that the real `replicate` client talks to.

    async with FakeReplicate() as fake:
        client = replicate.Client(api_token=fake.token, base_url=fake.base_url)
        ...

What it serves (the subset LOKIZ uses, shaped like the real API):
  POST /v1/models/{owner}/{name}/predictions   official models (no version)
  POST /v1/predictions                         pinned models (`version` id or owner/name:id)
  GET  /v1/predictions/{id}  ·  GET /v1/predictions (newest first, `next` cursor)
  POST /v1/predictions/{id}/cancel
  POST /v1/files (multipart `content` + `metadata`)  ·  GET /v1/files[/{id}[/download]]
  GET  /v1/webhooks/default/secret
  GET  /outputs/{prediction id}/{name}         output media (no auth, like replicate.delivery)

Predictions go starting → processing → a terminal status after a scripted
delay, and post signed webhooks (`webhook-id/-timestamp/-signature`) when
created with `webhook`. Inputs are validated against each model's schema
(SPEC §4) and refused with a 422 like the real API.

Scripting (see `Script` and `HttpFault`):
  fake.script(model, delay=…, outcome="failed", error=…, output=…, media=…,
              output_gone=True, webhook_copies=2)    every prediction of a model
  fake.script_next(times, model=None, **same)        the next accepted creates
  fake.set_media(model, bytes_or_path)               bytes served as its outputs
  fake.fail_next(route, times, status=…, retry_after=…, drop=…)   HTTP faults
  fake.rate_limit_creates(times, retry_after=1)      429 storm on create
  fake.ambiguous_creates(times, status=500 | drop="disconnect" | drop="hang")
  await fake.complete(id, outcome=…)                 finish a held (delay=None) prediction
  fake.expire_outputs(id=None)                       outputs deleted ("after one hour")
  FakeReplicate(create_limit=(600, 60.0))            creates beyond it get 429 (None: off)
Reading: fake.requests, fake.creates(), fake.predictions[id], fake.files[id],
fake.webhook_deliveries, fake.predictions_for_job(job_id), fake.wait_for(...),
fake.input_fetches (inputs given as URLs of other hosts, e.g. presigned S3 URLs: like
Replicate, the fake GETs them when the prediction starts and fails it when one is refused).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import math
import secrets
import socket
import struct
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, ClientError, ClientSession, ClientTimeout, web

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
BARK_VERSION = "b76242b40d67c76ab6742e987628a2a9ac019e11d56ab96c4e91ce03b79b2787"
MUSICGEN_VERSION = "671ac645ce5e552cc63a54a2bbff63fcf798043055d2dac5fc9e36a837eedcfb"


# --- model schemas -----------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One input of a model: `kind` is string, integer, number, boolean or uri."""

    kind: str
    required: bool = False
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class FakeModel:
    name: str  # owner/name
    params: Mapping[str, Param] | None  # None accepts any input
    output: str = "url"  # "url": a URL string; "audio_out": {"audio_out": URL}
    extension: str = "mp4"
    official: bool = True
    version: str = ""  # pinned models: the version id creates must name
    internal_name: str | None = None  # what the API reports as `model`, if not `name`


_SPEAKERS = ("announcer",) + tuple(
    f"{lang}_speaker_{n}"
    for lang in ("en", "de", "es", "fr", "hi", "it", "ja", "ko", "pl", "pt", "ru", "tr", "zh")
    for n in range(10)
)
_WAN = {
    "video": Param("uri", required=True),
    "character_image": Param("uri", required=True),
    "resolution": Param("string", choices=("480", "720")),
    "frames_per_second": Param("integer", minimum=5, maximum=60),
    "go_fast": Param("boolean"),
    "seed": Param("integer"),
}
DEFAULT_MODELS = (
    FakeModel(
        "google/veo-3-fast",
        {
            "prompt": Param("string", required=True),
            "image": Param("uri"),
            "duration": Param("integer", choices=(4, 6, 8)),
            "aspect_ratio": Param("string", choices=("16:9", "9:16")),
            "resolution": Param("string", choices=("720p", "1080p")),
            "generate_audio": Param("boolean"),
            "seed": Param("integer"),
            "negative_prompt": Param("string"),
        },
    ),
    FakeModel("wan-video/wan-2.2-animate-animation", _WAN),
    FakeModel("wan-video/wan-2.2-animate-replace", _WAN),
    FakeModel(
        "suno-ai/bark",
        {
            "prompt": Param("string", required=True),
            "history_prompt": Param("string", choices=_SPEAKERS),
            "custom_history_prompt": Param("uri"),
            "text_temp": Param("number", minimum=0, maximum=1),
            "waveform_temp": Param("number", minimum=0, maximum=1),
            "output_full": Param("boolean"),
        },
        output="audio_out",
        extension="wav",
        official=False,
        version=BARK_VERSION,
    ),
    FakeModel(
        "meta/musicgen",
        {
            "prompt": Param("string"),
            "input_audio": Param("uri"),
            "duration": Param("integer", minimum=1, maximum=30),
            "model_version": Param(
                "string", choices=("stereo-large", "stereo-melody-large", "melody", "large")
            ),
            "output_format": Param("string", choices=("wav", "mp3")),
            "normalization_strategy": Param("string", choices=("loudness", "clip", "peak", "rms")),
            "continuation": Param("boolean"),
            "continuation_start": Param("integer", minimum=0),
            "continuation_end": Param("integer", minimum=0),
            "multi_band_diffusion": Param("boolean"),
            "top_k": Param("integer", minimum=0),
            "top_p": Param("number", minimum=0),
            "temperature": Param("number", minimum=0),
            "classifier_free_guidance": Param("integer", minimum=0),
            "seed": Param("integer"),
        },
        extension="wav",
        official=False,
        version=MUSICGEN_VERSION,
    ),
)


# --- scripts and faults ------------------------------------------------------------


class _Shaped:
    def __repr__(self) -> str:
        return "SHAPED"


SHAPED: Any = _Shaped()  # Script.output default: the model's usual output shape


@dataclass(frozen=True)
class Script:
    """How a prediction behaves once created.

    delay: seconds from create to the end (a third of it `starting`); None holds
        the prediction in `processing` until `await fake.complete(id)`.
    outcome: succeeded | failed | canceled | aborted.
    output: SHAPED (a media URL shaped per model) or any JSON value, sent as is
        (None = missing output, {"unexpected": 1} = malformed).
    media: bytes or a file served at the output URL (default: `set_media` or
        generated bytes). output_gone: the output URL answers 404.
    webhook_copies: deliveries of each webhook event (2 = a duplicate).
    """

    delay: float | None = 0.05
    outcome: str = "succeeded"
    error: str | None = None
    output: Any = SHAPED
    media: bytes | Path | None = None
    output_gone: bool = False
    webhook_copies: int = 1
    logs: str = ""


@dataclass
class HttpFault:
    """An HTTP-level fault for the next `times` requests of a route.

    route: create | get | list | cancel | upload | secret | output.
    after_create: the create happens server-side, then the answer fails (the
        "ambiguous create"). drop: "disconnect" closes the connection without an
        answer; "hang" answers nothing for `hang_seconds`; else `status` is sent.
    """

    route: str
    times: int = 1
    status: int = 500
    retry_after: str | None = None
    detail: str | None = None
    model: str | None = None
    after_create: bool = False
    drop: str | None = None
    hang_seconds: float = 30.0


# --- recorded state ----------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeFile:
    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created_at: float
    deleted: bool = False


@dataclass
class FakePrediction:
    id: str
    model: FakeModel
    version: str
    input: dict[str, Any]
    script: Script
    seq: int
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    status: str = "starting"
    output: Any = None
    error: str | None = None
    logs: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    completed_at: float | None = None
    output_name: str = "output.mp4"
    data_removed: bool = False

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


@dataclass
class InputFetch:
    """An input URL the fake downloaded when its prediction started (as Replicate does)."""

    prediction_id: str
    name: str
    url: str
    status: int
    body: bytes


@dataclass
class WebhookDelivery:
    url: str
    headers: dict[str, str]
    body: bytes
    prediction_id: str | None
    event: str
    status: int | None = None
    error: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class _Refused(Exception):
    """Answer the current request with this status and problem body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.headers = headers
        self.body = {"title": title, "detail": detail, "status": status, **extra}


# --- the server --------------------------------------------------------------------


class FakeReplicate:
    """The fake API server; see the module docstring for how to script and read it."""

    def __init__(
        self,
        *,
        token: str | None = None,
        webhook_secret: str | None = None,
        default_delay: float = 0.05,
        page_size: int = 100,
        output_ttl: float = 3600.0,
        list_includes_input: bool = True,
        webhook_retry_delays: tuple[float, ...] = (0.05, 0.2),
        create_limit: tuple[int, float] | None = (600, 60.0),
    ) -> None:
        self.token = token or "r8_" + secrets.token_hex(18)
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(
            secrets.token_bytes(32)
        ).decode("ascii")
        self.default_script = Script(delay=default_delay)
        self.page_size = page_size
        self.output_ttl = output_ttl
        self.list_includes_input = list_includes_input
        self.webhook_retry_delays = webhook_retry_delays
        self.create_limit = create_limit  # (creates, per seconds); None: unlimited
        self.throttled = 0  # creates refused by that limit
        self._create_times: deque[float] = deque()

        self.models: dict[str, FakeModel] = {m.name: m for m in DEFAULT_MODELS}
        self.predictions: dict[str, FakePrediction] = {}
        self.files: dict[str, FakeFile] = {}
        self.requests: list[RecordedRequest] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.input_fetches: list[InputFetch] = []
        self.media: dict[str, bytes | Path] = {}
        self.faults: list[HttpFault] = []
        self._scripts: dict[str, Script] = {}
        self._next_scripts: list[tuple[str | None, Script]] = []
        self._seq = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: ClientSession | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> FakeReplicate:
        app = web.Application(middlewares=[self._middleware], client_max_size=1 << 30)
        routes = [
            web.post("/v1/models/{owner}/{name}/predictions", self._create_official),
            web.post("/v1/predictions", self._create_versioned),
            web.get("/v1/predictions", self._list),
            web.get("/v1/predictions/{id}", self._get),
            web.post("/v1/predictions/{id}/cancel", self._cancel),
            web.post("/v1/files", self._upload),
            web.get("/v1/files", self._list_files),
            web.get("/v1/files/{id}", self._get_file),
            web.delete("/v1/files/{id}", self._delete_file),
            web.get("/v1/files/{id}/download", self._download_file),
            web.get("/v1/webhooks/default/secret", self._secret),
            web.get("/outputs/{id}/{name}", self._output),
        ]
        app.add_routes(routes)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._session = ClientSession(timeout=ClientTimeout(total=10))
        return self

    async def stop(self) -> None:
        self._stopping.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeReplicate:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What `replicate.Client(base_url=…)` takes (the client adds `/v1/…`)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/v1"

    # -- scripting ---------------------------------------------------------------------

    def add_model(self, model: FakeModel) -> None:
        self.models[model.name] = model

    def script(self, model: str, **changes: Any) -> None:
        """Set how every later prediction of `model` behaves (see `Script`)."""
        self._scripts[_slug(model)] = replace(self.script_for(model), **changes)

    def script_next(self, times: int = 1, *, model: str | None = None, **changes: Any) -> None:
        """Script only the next `times` accepted creates (of `model`, or of any model)."""
        for _ in range(times):
            slug = _slug(model) if model else None
            base = self.script_for(model) if model else self.default_script
            self._next_scripts.append((slug, replace(base, **changes)))

    def script_for(self, model: str) -> Script:
        return self._scripts.get(_slug(model), self.default_script)

    def set_media(self, model: str, media: bytes | Path) -> None:
        """Bytes (or a file) served as the output of `model`'s predictions."""
        self.media[_slug(model)] = media

    def fail_next(self, route: str, times: int = 1, **fault: Any) -> HttpFault:
        """Make the next `times` requests of `route` fail (see `HttpFault`)."""
        added = HttpFault(route=route, times=times, **fault)
        self.faults.append(added)
        return added

    def rate_limit_creates(self, times: int, *, retry_after: float | int = 1) -> HttpFault:
        seconds = retry_after if isinstance(retry_after, int) else f"{retry_after:g}"
        return self.fail_next(
            "create",
            times,
            status=429,
            retry_after=str(seconds),
            detail=f"Request was throttled. Expected available in {seconds} second.",
        )

    def ambiguous_creates(
        self, times: int = 1, *, status: int = 500, drop: str | None = None, hang: float = 30.0
    ) -> HttpFault:
        """The next creates happen, but their answers fail (status, disconnect or hang)."""
        return self.fail_next(
            "create", times, status=status, after_create=True, drop=drop, hang_seconds=hang
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    async def complete(
        self,
        prediction_id: str,
        outcome: str | None = None,
        *,
        output: Any = SHAPED,
        error: str | None = None,
    ) -> None:
        """Finish a prediction now (e.g. one held with `delay=None`)."""
        prediction = self.predictions[prediction_id]
        if prediction.done:
            return
        if prediction.started_at is None:
            prediction.started_at = time.time()
        script = prediction.script
        if output is not SHAPED or error is not None:
            script = replace(script, output=output, error=error or script.error)
        prediction.script = script
        self._finish(prediction, outcome or script.outcome)

    def expire_outputs(self, prediction_id: str | None = None) -> None:
        """Delete outputs as Replicate does an hour after a prediction ends."""
        for prediction in self.predictions.values():
            if prediction_id is None or prediction.id == prediction_id:
                prediction.data_removed = True

    # -- reading -----------------------------------------------------------------------

    def creates(self, model: str | None = None) -> list[RecordedRequest]:
        """Every create request received (accepted or not), optionally of one model."""
        found = []
        for request in self.requests:
            if request.method != "POST":
                continue
            if request.path == "/v1/predictions":
                version = (request.json or {}).get("version", "")
                name = self._model_of_version(str(version))
            elif request.path.startswith("/v1/models/") and request.path.endswith("/predictions"):
                name = "/".join(request.path.split("/")[3:5])
            else:
                continue
            if model is None or name == _slug(model):
                found.append(request)
        return found

    def predictions_of(self, model: str) -> list[FakePrediction]:
        return [p for p in self.predictions.values() if p.model.name == _slug(model)]

    def predictions_for_job(self, job_id: str) -> list[FakePrediction]:
        """Predictions whose inputs use files uploaded for `job_id` or whose webhook names it."""
        return [p for p in self.predictions.values() if self._belongs_to(p, job_id)]

    def file_of_url(self, url: str) -> FakeFile | None:
        prefix = self.api_url + "/files/"
        if not isinstance(url, str) or not url.startswith(prefix):
            return None
        return self.files.get(url[len(prefix) :].split("/")[0])

    def output_url(self, prediction: FakePrediction) -> str:
        return f"{self.base_url}/outputs/{prediction.id}/{prediction.output_name}"

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds (re-checked whenever the fake's state changes)."""
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("condition not met in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass

    async def wait_webhooks(self, count: int, within: float = 5.0) -> list[WebhookDelivery]:
        """Wait until `count` webhook deliveries have been answered."""
        await self.wait_for(
            lambda: (
                sum(d.status is not None or d.error is not None for d in self.webhook_deliveries)
                >= count
            ),
            within,
        )
        return list(self.webhook_deliveries)

    # -- webhooks ----------------------------------------------------------------------

    def sign(self, webhook_id: str, timestamp: str, body: bytes, secret: str | None = None) -> str:
        key = base64.b64decode((secret or self.webhook_secret).removeprefix("whsec_"))
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    def signed_headers(
        self,
        body: bytes,
        *,
        webhook_id: str | None = None,
        timestamp: int | str | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        webhook_id = webhook_id or "msg_" + secrets.token_hex(12)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "content-type": "application/json",
            "user-agent": "Svix-Webhooks/1.0 (fake)",
            "webhook-id": webhook_id,
            "webhook-timestamp": stamp,
            "webhook-signature": self.sign(webhook_id, stamp, body, secret),
        }

    async def send_webhook(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        prediction_id: str | None = None,
        event: str = "manual",
    ) -> WebhookDelivery:
        """POST one delivery as given (forgeries, replays); returns it with the answer."""
        delivery = WebhookDelivery(url, dict(headers), body, prediction_id, event)
        self.webhook_deliveries.append(delivery)
        assert self._session is not None, "start the fake first"
        try:
            async with self._session.post(url, data=body, headers=dict(headers)) as response:
                await response.read()
                delivery.status = response.status
        except (ClientError, TimeoutError) as exc:
            delivery.error = repr(exc)
        self._changed.set()
        return delivery

    async def replay_webhook(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Send a recorded delivery again, byte for byte (an attacker's replay)."""
        return await self.send_webhook(
            delivery.url,
            delivery.body,
            delivery.headers,
            prediction_id=delivery.prediction_id,
            event="replay",
        )

    async def _deliver(self, prediction: FakePrediction, event: str) -> None:
        assert prediction.webhook
        body = json.dumps(self._prediction_json(prediction)).encode()
        webhook_id = "msg_" + secrets.token_hex(12)
        for _ in range(max(1, prediction.script.webhook_copies)):
            # The sender retries a failed delivery with the same id, newly signed.
            for pause in (0.0, *self.webhook_retry_delays):
                await asyncio.sleep(pause)
                headers = self.signed_headers(body, webhook_id=webhook_id)
                delivery = await self.send_webhook(
                    prediction.webhook, body, headers, prediction_id=prediction.id, event=event
                )
                if delivery.status is not None and 200 <= delivery.status < 300:
                    break

    def _wants(self, prediction: FakePrediction, event: str) -> bool:
        if not prediction.webhook:
            return False
        events = prediction.webhook_events_filter
        return events is None or event in events

    # -- prediction lifecycle ----------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, prediction: FakePrediction) -> None:
        delay = prediction.script.delay
        await asyncio.sleep((delay or 0) / 3)
        if prediction.done:
            return
        if not await self._fetch_inputs(prediction):
            return
        prediction.status = "processing"
        prediction.started_at = time.time()
        prediction.logs = prediction.script.logs or "Running prediction...\n"
        self._changed.set()
        if delay is None:
            return
        await asyncio.sleep(delay * 2 / 3)
        if not prediction.done:
            self._finish(prediction, prediction.script.outcome)

    async def _fetch_inputs(self, prediction: FakePrediction) -> bool:
        """GET every input URL of another host (Replicate downloads such inputs itself);
        a refused or unreachable one fails the prediction."""
        for name, value in prediction.input.items():
            if not isinstance(value, str) or not _is_http_url(value) or self._own(value):
                continue
            status, body = 0, b""
            try:
                assert self._session is not None
                async with self._session.get(value) as answer:
                    status, body = answer.status, await answer.read()
            except ClientError:
                pass
            self.input_fetches.append(InputFetch(prediction.id, name, value, status, body))
            if status != 200:
                prediction.script = replace(prediction.script, error=(
                    f"Failed to download input {name}: HTTP {status or 'unreachable'}"))
                self._finish(prediction, "failed")
                return False
        return True

    def _own(self, url: str) -> bool:
        return url.startswith(self.base_url)

    def _finish(self, prediction: FakePrediction, outcome: str) -> None:
        if outcome not in TERMINAL:
            raise ValueError(f"not a terminal status: {outcome}")
        script = prediction.script
        prediction.status = outcome
        prediction.completed_at = time.time()
        if outcome == "succeeded":
            prediction.output = (
                self._shaped_output(prediction) if script.output is SHAPED else (script.output)
            )
            prediction.logs += "Prediction done.\n"
        elif outcome == "failed":
            prediction.error = script.error or "Prediction failed: the model crashed."
        elif outcome == "aborted":
            prediction.error = script.error
        self._changed.set()
        if self._wants(prediction, "completed"):
            self._spawn(self._deliver(prediction, "completed"))

    def _shaped_output(self, prediction: FakePrediction) -> Any:
        url = self.output_url(prediction)
        if prediction.model.output == "audio_out":
            return {"audio_out": url}
        return url

    # -- HTTP: plumbing ------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = RecordedRequest(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(record)
        try:
            if request.path.startswith("/v1/") and not request.path.endswith("/download"):
                expected = f"Bearer {self.token}"
                if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
                    raise _Refused(
                        401, "Unauthenticated", "You did not pass a valid authentication token"
                    )
            response: web.StreamResponse = await handler(request)
        except _Refused as refused:
            response = _problem(refused)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        record.status = response.status
        self._changed.set()
        return response

    def _take_fault(
        self, route: str, model: str | None = None, *, after: bool = False
    ) -> HttpFault | None:
        for fault in self.faults:
            if fault.route != route or fault.after_create != after or fault.times <= 0:
                continue
            if fault.model and model and _slug(fault.model) != model:
                continue
            fault.times -= 1
            return fault
        return None

    async def _fail(self, request: web.Request, fault: HttpFault) -> web.StreamResponse:
        if fault.drop == "disconnect":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault.drop == "hang":
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.hang_seconds)
            except TimeoutError:
                pass
            return web.Response(status=504)
        titles = {429: "Request was throttled.", 500: "Internal Server Error"}
        body = {
            "title": titles.get(fault.status, "Error"),
            "detail": fault.detail or f"Fake failure (HTTP {fault.status})",
            "status": fault.status,
        }
        headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else None
        return web.json_response(body, status=fault.status, headers=headers)

    # -- HTTP: predictions ---------------------------------------------------------------

    async def _create_official(self, request: web.Request) -> web.StreamResponse:
        slug = f"{request.match_info['owner']}/{request.match_info['name']}"
        if fault := self._take_fault("create", slug):
            return await self._fail(request, fault)
        self._count_create()
        model = self.models.get(slug)
        if model is None or not model.official:
            raise _Refused(
                404,
                "Not found",
                f"The requested model {slug} does not exist or is not an official model; "
                "create predictions for it with a version.",
            )
        body = await _json_object(request)
        version = model.version or "dp-" + hashlib.md5(slug.encode()).hexdigest()
        return await self._create(request, model, version, body)

    async def _create_versioned(self, request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        raw_version = body.get("version")
        slug = self._model_of_version(str(raw_version or ""))
        if fault := self._take_fault("create", slug):
            return await self._fail(request, fault)
        self._count_create()
        if not isinstance(raw_version, str) or not raw_version:
            raise _Refused(422, "Invalid version", "version is required")
        model = self.models.get(slug) if slug else None
        if model is None:
            raise _Refused(
                422,
                "Invalid version or not permitted",
                "The specified version does not exist (or perhaps you don't have permission "
                "to use it?)",
            )
        return await self._create(request, model, raw_version.rpartition(":")[2], body)

    async def _create(
        self, request: web.Request, model: FakeModel, version: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        payload_input = body.get("input")
        if not isinstance(payload_input, dict):
            raise _Refused(422, "Input validation failed", "- input: input is required\n")
        problems = self._validate_input(model, payload_input)
        webhook = body.get("webhook")
        events = body.get("webhook_events_filter")
        if webhook is not None and not _is_http_url(webhook):
            problems.append(("format", "webhook", "webhook must be an HTTP(S) URL"))
        if events is not None and (
            not isinstance(events, list) or not set(events) <= WEBHOOK_EVENTS
        ):
            problems.append(
                (
                    "enum",
                    "webhook_events_filter",
                    "must be a list of start, output, logs, completed",
                )
            )
        if problems:
            raise _Refused(
                422,
                "Input validation failed",
                "".join(f"- {name}: {text}\n" for _, name, text in problems),
                invalid_fields=[
                    {"type": kind, "field": name, "description": text}
                    for kind, name, text in problems
                ],
            )

        prediction = self._new_prediction(model, version, payload_input, webhook, events)
        if self._wants(prediction, "start"):
            self._spawn(self._deliver(prediction, "start"))
        self._spawn(self._run(prediction))
        if fault := self._take_fault("create", model.name, after=True):
            return await self._fail(request, fault)
        wait = _prefer_wait(request.headers.get("Prefer", ""))
        if wait:
            try:
                await self.wait_for(lambda: prediction.done, wait)
            except TimeoutError:
                pass
        return web.json_response(self._prediction_json(prediction), status=201)

    def _count_create(self) -> None:
        """Replicate's create limit (600 a minute): refuse with 429 beyond `create_limit`."""
        if self.create_limit is None:
            return
        count, window = self.create_limit
        now = time.monotonic()
        while self._create_times and now - self._create_times[0] >= window:
            self._create_times.popleft()
        if len(self._create_times) >= count:
            wait = max(1, math.ceil(window - (now - self._create_times[0])))
            self.throttled += 1
            raise _Refused(
                429,
                "Request was throttled.",
                f"Request was throttled. Expected available in {wait} second.",
                headers={"retry-after": str(wait)},
            )
        self._create_times.append(now)

    def _new_prediction(
        self,
        model: FakeModel,
        version: str,
        payload_input: dict[str, Any],
        webhook: str | None,
        events: list[str] | None,
    ) -> FakePrediction:
        script = self.script_for(model.name)
        for index, (slug, scripted) in enumerate(self._next_scripts):
            if slug is None or slug == model.name:
                script = scripted
                del self._next_scripts[index]
                break
        self._seq += 1
        extension = model.extension
        if model.name == "meta/musicgen":
            extension = str(payload_input.get("output_format", "wav"))
        prediction = FakePrediction(
            id=_prediction_id(),
            model=model,
            version=version,
            input=json.loads(json.dumps(payload_input)),
            script=script,
            seq=self._seq,
            webhook=webhook,
            webhook_events_filter=list(events) if events is not None else None,
            output_name=("audio." if model.output == "audio_out" else "output.") + extension,
        )
        self.predictions[prediction.id] = prediction
        self._changed.set()
        return prediction

    async def _get(self, request: web.Request) -> web.StreamResponse:
        prediction = self.predictions.get(request.match_info["id"])
        if fault := self._take_fault("get", prediction.model.name if prediction else None):
            return await self._fail(request, fault)
        if prediction is None:
            raise _Refused(404, "Not found", "The requested resource could not be found.")
        return web.json_response(self._prediction_json(prediction))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        if fault := self._take_fault("list"):
            return await self._fail(request, fault)
        newest_first = sorted(self.predictions.values(), key=lambda p: p.seq, reverse=True)
        cursor = request.query.get("cursor")
        if cursor:
            try:
                before = int(base64.urlsafe_b64decode(cursor.encode()).decode())
            except ValueError:
                raise _Refused(400, "Bad request", "invalid cursor") from None
            newest_first = [p for p in newest_first if p.seq < before]
        page = newest_first[: self.page_size]
        more = len(newest_first) > len(page)
        next_url = None
        if more and page:
            token = base64.urlsafe_b64encode(str(page[-1].seq).encode()).decode()
            next_url = f"{self.api_url}/predictions?cursor={urllib.parse.quote(token)}"
        results = []
        for prediction in page:
            item = self._prediction_json(prediction)
            if not self.list_includes_input:
                item.pop("input", None)
            results.append(item)
        return web.json_response({"previous": None, "next": next_url, "results": results})

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        prediction = self.predictions.get(request.match_info["id"])
        if fault := self._take_fault("cancel", prediction.model.name if prediction else None):
            return await self._fail(request, fault)
        if prediction is None:
            raise _Refused(404, "Not found", "The requested resource could not be found.")
        if not prediction.done:
            self._finish(prediction, "canceled")
        return web.json_response(self._prediction_json(prediction))

    def _prediction_json(self, prediction: FakePrediction) -> dict[str, Any]:
        get_url = f"{self.api_url}/predictions/{prediction.id}"
        data: dict[str, Any] = {
            "id": prediction.id,
            "model": prediction.model.internal_name or prediction.model.name,
            "version": prediction.version,
            "input": prediction.input,
            "logs": prediction.logs,
            "output": prediction.output,
            "data_removed": self._output_removed(prediction),
            "error": prediction.error,
            "status": prediction.status,
            "source": "api",
            "created_at": _iso(prediction.created_at),
            "urls": {
                "get": get_url,
                "cancel": get_url + "/cancel",
                "web": f"https://replicate.com/p/{prediction.id}",
            },
        }
        if prediction.started_at is not None:
            data["started_at"] = _iso(prediction.started_at)
        if prediction.completed_at is not None:
            data["completed_at"] = _iso(prediction.completed_at)
            started = prediction.started_at or prediction.created_at
            data["metrics"] = {"predict_time": round(prediction.completed_at - started, 3)}
        return data

    def _output_removed(self, prediction: FakePrediction) -> bool:
        if prediction.data_removed:
            return True
        ended = prediction.completed_at
        return ended is not None and time.time() - ended > self.output_ttl

    # -- HTTP: input validation ----------------------------------------------------------

    def _validate_input(
        self, model: FakeModel, payload_input: dict[str, Any]
    ) -> list[tuple[str, str, str]]:
        problems: list[tuple[str, str, str]] = []
        if model.params is None:
            return problems
        for name, param in model.params.items():
            if param.required and name not in payload_input:
                problems.append(("required", "input", f"{name} is required"))
        for name, value in payload_input.items():
            param = model.params.get(name)
            field_name = f"input.{name}"
            if param is None:
                problems.append(
                    (
                        "additional_property_not_allowed",
                        "input",
                        f"Additional property {name} is not allowed",
                    )
                )
                continue
            problem = self._check(param, name, value)
            if problem:
                problems.append((problem[0], field_name, problem[1]))
        return problems

    def _check(self, param: Param, name: str, value: Any) -> tuple[str, str] | None:
        kind = param.kind
        if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
            return "invalid_type", f"Invalid type. Expected: integer, given: {_json_type(value)}"
        if kind == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            return "invalid_type", f"Invalid type. Expected: number, given: {_json_type(value)}"
        if kind == "boolean" and not isinstance(value, bool):
            return "invalid_type", f"Invalid type. Expected: boolean, given: {_json_type(value)}"
        if kind in ("string", "uri") and not isinstance(value, str):
            return "invalid_type", f"Invalid type. Expected: string, given: {_json_type(value)}"
        if kind == "uri" and not self._serves(value):
            return "format", f"{name} must be a URL of an uploaded file or a data URI"
        if param.choices and value not in param.choices:
            listed = ", ".join(str(choice) for choice in param.choices[:12])
            return "enum", f"{name} must be one of the following: {listed}"
        if param.minimum is not None and value < param.minimum:
            return "number_gte", f"Must be greater than or equal to {param.minimum:g}"
        if param.maximum is not None and value > param.maximum:
            return "number_lte", f"Must be less than or equal to {param.maximum:g}"
        return None

    def _serves(self, url: str) -> bool:
        if url.startswith("data:"):
            return "," in url
        uploaded = self.file_of_url(url)
        if uploaded is not None:
            return not uploaded.deleted
        prefix = self.base_url + "/outputs/"
        if url.startswith(prefix):
            prediction = self.predictions.get(url[len(prefix) :].split("/")[0])
            return prediction is not None and not self._output_removed(prediction)
        # A URL of another host is accepted as is and downloaded when the prediction starts.
        return _is_http_url(url) and not self._own(url)

    def _model_of_version(self, version: str) -> str | None:
        owner_name, _, version_id = version.rpartition(":")
        for model in self.models.values():
            if model.version and model.version == version_id:
                if not owner_name or owner_name == model.name:
                    return model.name
        return None

    def _belongs_to(self, prediction: FakePrediction, job_id: str) -> bool:
        if prediction.webhook and job_id in prediction.webhook:
            return True
        for value in prediction.input.values():
            uploaded = self.file_of_url(value) if isinstance(value, str) else None
            if uploaded is not None and uploaded.metadata.get("job_id") == job_id:
                return True
        return False

    # -- HTTP: files, secret, outputs ------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        if fault := self._take_fault("upload"):
            return await self._fail(request, fault)
        if not request.content_type.startswith("multipart/"):
            raise _Refused(400, "Bad request", "expected multipart/form-data")
        reader = await request.multipart()
        content: bytes | None = None
        name, content_type, metadata = "file", "application/octet-stream", {}
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "content":
                content = bytes(await part.read())
                name = part.filename or name
                content_type = part.headers.get("Content-Type", content_type)
            elif part.name == "metadata":
                try:
                    metadata = json.loads(await part.text())
                except ValueError:
                    raise _Refused(422, "Invalid metadata", "metadata must be JSON") from None
        if content is None:
            raise _Refused(422, "Missing content", "the multipart field `content` is required")
        uploaded = FakeFile(
            id=base64.b32encode(secrets.token_bytes(15)).decode().lower(),
            name=name,
            content_type=content_type,
            data=content,
            metadata=metadata if isinstance(metadata, dict) else {},
            created_at=time.time(),
        )
        self.files[uploaded.id] = uploaded
        return web.json_response(self._file_json(uploaded), status=201)

    def _file_json(self, uploaded: FakeFile) -> dict[str, Any]:
        return {
            "id": uploaded.id,
            "name": uploaded.name,
            "content_type": uploaded.content_type,
            "size": len(uploaded.data),
            "etag": hashlib.md5(uploaded.data).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(uploaded.data).hexdigest(),
                "md5": hashlib.md5(uploaded.data).hexdigest(),
            },
            "metadata": uploaded.metadata,
            "created_at": _iso(uploaded.created_at),
            "expires_at": _iso(uploaded.created_at + 86400),
            "urls": {"get": f"{self.api_url}/files/{uploaded.id}"},
        }

    def _live_file(self, request: web.Request) -> FakeFile:
        uploaded = self.files.get(request.match_info["id"])
        if uploaded is None or uploaded.deleted:
            raise _Refused(404, "Not found", "The requested resource could not be found.")
        return uploaded

    async def _list_files(self, request: web.Request) -> web.StreamResponse:
        live = [self._file_json(f) for f in self.files.values() if not f.deleted]
        return web.json_response({"previous": None, "next": None, "results": live[::-1]})

    async def _get_file(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._file_json(self._live_file(request)))

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        self._live_file(request).deleted = True
        return web.Response(status=204)

    async def _download_file(self, request: web.Request) -> web.StreamResponse:
        uploaded = self._live_file(request)
        return web.Response(body=uploaded.data, content_type=uploaded.content_type)

    async def _secret(self, request: web.Request) -> web.StreamResponse:
        if fault := self._take_fault("secret"):
            return await self._fail(request, fault)
        return web.json_response({"key": self.webhook_secret})

    async def _output(self, request: web.Request) -> web.StreamResponse:
        prediction = self.predictions.get(request.match_info["id"])
        if fault := self._take_fault("output", prediction.model.name if prediction else None):
            return await self._fail(request, fault)
        if (
            prediction is None
            or prediction.status != "succeeded"
            or request.match_info["name"] != prediction.output_name
            or prediction.script.output_gone
            or self._output_removed(prediction)
        ):
            return web.Response(status=404, text="Not Found")
        media = prediction.script.media
        if media is None:
            media = self.media.get(prediction.model.name)
        if isinstance(media, Path):
            return web.FileResponse(media)
        if media is None:
            media = default_media(prediction.model.extension, prediction.id)
        content_type = {
            "mp4": "video/mp4",
            "wav": "audio/wav",
            "mp3": "audio/mpeg",
        }.get(prediction.output_name.rpartition(".")[2], "application/octet-stream")
        return web.Response(body=media, content_type=content_type)


# --- helpers -------------------------------------------------------------------------


def default_media(extension: str, seed: str = "") -> bytes:
    """Small stand-in output bytes: a silent WAV (playable) or an mp4-looking blob."""
    if extension == "wav":
        rate, samples = 8000, 800
        data = b"\x00\x00" * samples
        header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        return header + fmt + b"data" + struct.pack("<I", len(data)) + data
    buffer = io.BytesIO()
    buffer.write(struct.pack(">I", 24) + b"ftypisom" + b"\x00\x00\x02\x00" + b"isomiso2")
    filler = hashlib.sha256(seed.encode()).digest() * 64
    buffer.write(struct.pack(">I", 8 + len(filler)) + b"mdat" + filler)
    return buffer.getvalue()


def _slug(model: str) -> str:
    return model.partition(":")[0]


def _prediction_id() -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parsed = urllib.parse.urlsplit(value)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _prefer_wait(header: str) -> float:
    """Seconds a `Prefer: wait[=N]` header asks the server to hold the answer (0: none)."""
    for preference in header.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            if not value:
                return 60.0
            try:
                return float(min(60, max(1, int(value))))
            except ValueError:
                return 0.0
    return 0.0


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _Refused(400, "Bad request", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _Refused(400, "Bad request", "The request body must be a JSON object")
    return body


def _problem(refused: _Refused) -> web.Response:
    return web.json_response(
        refused.body,
        status=refused.status,
        headers=refused.headers,
        content_type="application/problem+json",
    )


class WebhookSink:
    """A tiny receiver on 127.0.0.1 to point webhooks at; records every delivery.

    async with WebhookSink() as sink:
        url = sink.url("/replicate/job-1")
        ... sink.received -> [(path, headers, body)], answers `sink.status`
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> WebhookSink:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str = "/webhook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait(
        self, count: int, within: float = 5.0
    ) -> list[tuple[str, dict[str, str], bytes]]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"got {len(self.received)} webhooks, wanted {count}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        return list(self.received)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.received.append((request.path_qs, headers, body))
        self._changed.set()
        return web.Response(status=self.status)
