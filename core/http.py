"""The HTTP server (aiohttp): Replicate webhooks, `/healthz`, `/readyz`, `/metrics`.

`/healthz` says the process is alive; `/readyz` (what a load balancer asks) says the
database and every registered check (`add_ready_check`: Redis, the media store…) answer
and the instance is not draining (SIGTERM turns it false at once).

Adapters may add their own routes (Telegram webhook mode) before it starts.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from core.backends.base import Backend, BackendError, WebhookInvalid
from core.engine import JobEngine
from core.errors import SharedStoreDown
from core.jobs import JobStore
from core.storage import Database
from core.webhooks import SeenWebhooks, WebhookIds, WebhookRejected, webhook_id_of

log = logging.getLogger(__name__)

REPLICATE_WEBHOOK_PATH = "/webhooks/replicate"

KB = 1024
# Largest body per POST route; other routes get DEFAULT_BODY_LIMIT, GET/HEAD none at all.
BODY_LIMITS: Mapping[str, int] = {REPLICATE_WEBHOOK_PATH: 2 * KB * KB}
DEFAULT_BODY_LIMIT = 1024 * KB  # a Telegram update is a few KB
BODY_TIMEOUT = 10.0  # seconds to receive a whole request body
KEEPALIVE_TIMEOUT = 15.0  # seconds an idle connection may stay open
LINGER_TIME = 2.0  # seconds to drain an unread body after answering early


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadyCheck = Callable[[], Awaitable[bool]]
READY_CHECK_TIMEOUT = 3.0  # a check that does not answer in time counts as down


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


class HttpServer:
    def __init__(
        self,
        *,
        db: Database,
        engine: JobEngine,
        jobs: JobStore,
        host: str,
        port: int,
        webhooks: Backend | None = None,
        body_limits: Mapping[str, int] = BODY_LIMITS,
        body_timeout: float = BODY_TIMEOUT,
        keepalive_timeout: float = KEEPALIVE_TIMEOUT,
        metrics_token: str | None = None,
        seen: WebhookIds | None = None,
    ) -> None:
        """`webhooks`: the backend whose deliveries the webhook route verifies and reads
        (None: the route answers 404)."""
        self.db = db
        self.engine = engine
        self.jobs = jobs
        self.host = host
        self.port = port
        self._webhooks = webhooks
        self._metrics_token = metrics_token
        self._seen: WebhookIds = seen or SeenWebhooks()
        self._checks: dict[str, Callable[[], Awaitable[bool]]] = {}
        self.body_limits = dict(body_limits)
        self.streamed: set[str] = set()
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.app = web.Application(
            client_max_size=max(DEFAULT_BODY_LIMIT, *self.body_limits.values()),
            middlewares=[self._bounded_body],
        )
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.metrics)
        self.app.router.add_post(REPLICATE_WEBHOOK_PATH, self.replicate_webhook)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None
        self.draining = False  # set on SIGTERM: /readyz answers 503 from then on
        self.ready_checks: dict[str, ReadyCheck] = {}

    def add_ready_check(self, name: str, check: ReadyCheck) -> None:
        """Make `/readyz` also ask `check` (True: reachable). For shared services (Redis,
        the media store) that an instance cannot serve without."""
        self.ready_checks[name] = check

    async def start(self) -> None:
        # A silent or idle connection is closed after keepalive_timeout (aiohttp starts that
        # timer on connect); half-sent bodies are cut by _bounded_body.
        self._runner = web.AppRunner(
            self.app, access_log=None, keepalive_timeout=self.keepalive_timeout,
            lingering_time=min(LINGER_TIME, self.body_timeout),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("HTTP server on http://%s:%s (/healthz, /metrics)", self.host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def add_check(self, name: str, check: Callable[[], Awaitable[bool]]) -> None:
        """A shared service the instance needs (e.g. "redis"): reported by the health check,
        which is down while `check()` is False."""
        self._checks[name] = check

    def stream_body(self, path: str) -> None:
        """Let the POST route `path` read its own body as a stream, under its own size and
        time rules (an upload written to disk, far larger than a webhook)."""
        self.streamed.add(path)

    def body_limit(self, request: web.BaseRequest) -> int:
        """The largest body this route takes, in bytes (0: none)."""
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return 0
        return self.body_limits.get(request.path, DEFAULT_BODY_LIMIT)

    @web.middleware
    async def _bounded_body(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Read the whole body, within the route's size limit and BODY_TIMEOUT, before the
        handler runs: a client that stops half-way is answered 408 and disconnected."""
        if not request.body_exists or request.path in self.streamed:
            return await handler(request)
        limit = self.body_limit(request)
        if limit == 0 or (request.content_length or 0) > limit:
            return _closing(web.Response(status=413, text="request body too large"))
        bounded = request.clone(client_max_size=limit + 1)
        try:
            async with asyncio.timeout(self.body_timeout):
                await bounded.read()
        except TimeoutError:
            log.info("closed a request whose body did not arrive in %gs: %s %s",
                     self.body_timeout, request.method, request.path)
            return _closing(web.Response(status=408, text="request body too slow"))
        except web.HTTPRequestEntityTooLarge:
            return _closing(web.Response(status=413, text="request body too large"))
        return await handler(bounded)

    # --- routes -----------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        checks: dict[str, object] = {}
        healthy = True
        try:
            checks["database"] = "ok" if await self.db.ping() else "down"
        except Exception as exc:  # the answer is the report, not a crash
            checks["database"] = f"down: {type(exc).__name__}"
        healthy &= checks["database"] == "ok"
        for name, check in self._checks.items():
            up = await check()
            checks[name] = "ok" if up else "down"
            healthy &= up
        checks["engine"] = "ok" if self.engine.alive else "stopped"
        healthy &= self.engine.alive
        checks["queued"] = self.engine.queue_depth()
        checks["running"] = self.engine.running_count
        return web.json_response({"status": "ok" if healthy else "down", **checks},
                                 status=200 if healthy else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        ready = not self.draining
        named: dict[str, ReadyCheck] = {"database": self.db.ping, **self.ready_checks}
        for name, check in named.items():
            try:
                async with asyncio.timeout(READY_CHECK_TIMEOUT):
                    checks[name] = "ok" if await check() else "down"
            except Exception as exc:  # the answer is the report, not a crash
                checks[name] = f"down: {type(exc).__name__}"
            ready &= checks[name] == "ok"
        status = "draining" if self.draining else "ok" if ready else "down"
        return web.json_response({"status": status, **checks}, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        if self._metrics_token is not None and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(),
            f"Bearer {self._metrics_token}".encode(),
        ):
            return web.Response(status=401, text="unauthorized",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        # Job gauges: one indexed count on the read path. Money: running totals kept by this
        # process as entries commit (no scan of the ledger per scrape).
        counts = await self.jobs.counts_by_status()
        totals = self.db.ledger_totals
        lines = [
            "# HELP lokiz_jobs Jobs by state.",
            "# TYPE lokiz_jobs gauge",
            *(f'lokiz_jobs{{state="{state}"}} {n}' for state, n in counts.items()),
            "# HELP lokiz_queue_depth Jobs waiting for a slot.",
            "# TYPE lokiz_queue_depth gauge",
            f"lokiz_queue_depth {self.engine.queue_depth()}",
            "# HELP lokiz_jobs_running Jobs generating now.",
            "# TYPE lokiz_jobs_running gauge",
            f"lokiz_jobs_running {self.engine.running_count}",
            "# HELP lokiz_credits_charged_total Credits charged for jobs by this process.",
            "# TYPE lokiz_credits_charged_total counter",
            f"lokiz_credits_charged_total {totals.get('charge', 0)}",
            "# HELP lokiz_credits_refunded_total Credits refunded for jobs by this process.",
            "# TYPE lokiz_credits_refunded_total counter",
            f"lokiz_credits_refunded_total {totals.get('refund', 0)}",
            "# HELP lokiz_webhooks_total Replicate webhooks by outcome.",
            "# TYPE lokiz_webhooks_total counter",
            f'lokiz_webhooks_total{{outcome="accepted"}} {self.engine.stats.webhooks_accepted}',
            f'lokiz_webhooks_total{{outcome="ignored"}} {self.engine.stats.webhooks_ignored}',
            f'lokiz_webhooks_total{{outcome="rejected"}} {self.engine.stats.webhooks_rejected}',
            "# HELP lokiz_job_duration_seconds Generation time per model.",
            "# TYPE lokiz_job_duration_seconds histogram",
        ]
        for model, histogram in sorted(self.engine.stats.durations.items()):
            label = model.replace('"', "").replace("\\", "")
            for le, count in histogram.cumulative():
                lines.append(f'lokiz_job_duration_seconds_bucket{{model="{label}",le="{le}"}} {count}')
            lines.append(f'lokiz_job_duration_seconds_sum{{model="{label}"}} {histogram.sum:.3f}')
            lines.append(f'lokiz_job_duration_seconds_count{{model="{label}"}} {histogram.count}')
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")

    async def replicate_webhook(self, request: web.Request) -> web.Response:
        if self._webhooks is None:
            return web.Response(status=404)
        body = await request.read()
        try:
            prediction = await self._webhooks.parse_webhook(request.headers, body)
        except WebhookRejected as exc:
            self.engine.stats.webhooks_rejected += 1
            log.warning("rejected a Replicate webhook: %s", exc)
            return web.Response(status=401, text="rejected")
        except WebhookInvalid:
            return web.Response(status=400, text="bad payload")
        except BackendError as exc:
            log.error("cannot verify Replicate webhooks: %s", exc)
            return web.Response(status=503)
        except Exception:  # e.g. no secret yet: the sender retries later
            log.exception("cannot verify Replicate webhooks")
            return web.Response(status=503)
        try:
            first = await self._seen.claim(webhook_id_of(request.headers))
        except SharedStoreDown as exc:  # Replicate retries; the poll is the fallback
            log.warning("Replicate webhook not taken: %s", exc)
            return web.Response(status=503)
        if not first:
            return web.Response(status=200, text="duplicate")
        await self.engine.on_webhook(prediction)
        return web.Response(status=200, text="ok")
