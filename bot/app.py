"""Composition root: settings → services → adapters. The only place that wires.

`build_services` makes the platform-free core; `run_bot` adds every adapter
that has a token, starts the engine and the HTTP server, and runs until a
signal or an adapter's fatal error.

Roles (PostgreSQL mode): `run` = adapters + a job worker; `run --no-worker` =
adapters only; `worker` = a job worker only, which delivers over the platforms'
REST APIs (no polling, no gateway). SIGTERM drains: `/readyz` turns 503, the
adapters stop taking updates, the worker finishes its steps or hands them back
within DRAIN_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from core.backends.base import Backend
from core.catalogue import MUSIC, TemplateCatalogue, build_models
from core.credits import CreditLedger
from core.desk import Desk
from core.engine import JobEngine
from core.errors import ConfigError
from core.http import REPLICATE_WEBHOOK_PATH, HttpServer
from core.jobs import JobStore
from core.media import ffmpeg
from core.media.fit import fit_video
from core.media_store import MediaStore, media_store_from
from core.notify import Notifier, OutputMedia
from core.platform_files import PlatformFiles
from core.ratelimit import INLINE_BURST, INLINE_PER_SECOND, UpdateRateLimiter
from core.redis_shared import RedisRateLimiter, RedisSeenWebhooks, RedisShared, RedisTokenBucket
from core.sessions import SESSION_TTL, SessionStore
from core.settings import Settings
from core.social import Posts
from core.storage import Database, open_database
from core.storage.postgres import PostgresDatabase
from core.studio.account import Account
from core.studio.admin import AdminDesk
from core.studio.studio import Studio, StudioLimits
from core.users import UserDirectory

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    ledger: CreditLedger
    jobs: JobStore
    sessions: SessionStore
    media: MediaStore
    backend: Backend
    engine: JobEngine
    studio: Studio
    account: Account
    admin: AdminDesk
    desk: Desk
    http: HttpServer
    posts: Posts
    shared: RedisShared | None = None  # REDIS_URL: what several instances share

    async def close(self) -> None:
        await self.engine.stop()
        await self.http.stop()
        await self.backend.close()
        await self.media.close()
        await self.db.close()
        if self.shared is not None:
            await self.shared.close()


class Adapter(Protocol):
    """A chat platform. It is given its settings and the Desk, nothing else; its
    `notifier` is the slot the engine speaks through to that platform."""

    notifier: Notifier

    def mount(self, app: web.Application) -> None:
        """Add the platform's webhook routes to the HTTP server (before it starts)."""
        ...

    async def run(self) -> None:
        """Serve until cancelled (or raise on a fatal platform error)."""
        ...

    async def close(self) -> None: ...


REPLICATE_CREATES_PER_MINUTE = 500  # under Replicate's 600 a minute per account


def make_backend(settings: Settings, media: MediaStore, shared: RedisShared | None = None) -> Backend:
    if settings.backend == "replicate":
        from core.backends.replicate import ReplicateBackend

        assert settings.replicate_api_token is not None
        token = settings.replicate_api_token.get_secret_value()
        configured = settings.replicate_webhook_secret
        shared_creates = None
        if shared is not None:  # one budget per account, over every instance
            account = hashlib.sha256(token.encode()).hexdigest()[:16]
            per_minute = REPLICATE_CREATES_PER_MINUTE
            shared_creates = RedisTokenBucket(shared, f"replicate-creates:{account}",
                                              per_minute / 60.0, per_minute / 6.0)
        return ReplicateBackend(
            token, settings.replicate_base_url,
            webhook_secret=configured.get_secret_value() if configured else None,
            media=media,  # MEDIA_PUBLIC: inputs go as presigned URLs instead of uploads
            shared_creates=shared_creates,
        )
    from core.backends.local import LocalBackend

    return LocalBackend(work_dir=media.root / "local")


async def build_services(settings: Settings) -> Services:
    ffmpeg.configure(ffmpeg_binary=settings.ffmpeg_binary, max_pixels=settings.max_pixels)
    db = await open_database(settings.database_url)
    users = UserDirectory(db)
    ledger = CreditLedger(db, users, starter_credits=settings.starter_credits,
                          platform_starter={"web": settings.web_starter})
    jobs = JobStore(db, ledger)
    media = media_store_from(settings, db)
    try:
        await media.start()  # a bad S3 setting stops start-up here, naming the variable
    except BaseException:
        await db.close()
        raise
    # A session cannot outlive the media it works on; with MEDIA_URL its files are keys.
    sessions = SessionStore(db, ttl=min(SESSION_TTL, settings.media_ttl_hours * 3600), media=media)
    shared = RedisShared.from_url(settings.redis_url, settings.redis_key_prefix) \
        if settings.redis_url else None
    models = build_models(settings)
    templates = TemplateCatalogue.load(settings.templates_file)
    backend = make_backend(settings, media, shared)
    posts = Posts(db, media=media, templates=templates,
                  post_ttl_days=settings.post_ttl_days)

    async def fit_output(path: Path, limit: int) -> OutputMedia:
        fitted = await fit_video(path, limit, path.with_suffix(f".fit{limit}.mp4"))
        return OutputMedia(
            path=fitted.path, kind="video", duration=fitted.duration, width=fitted.width,
            height=fitted.height, thumbnail=fitted.thumbnail,
        )

    webhook_url = None
    if settings.public_url and backend.supports_webhooks:
        webhook_url = settings.public_url.rstrip("/") + REPLICATE_WEBHOOK_PATH
    engine = JobEngine(
        jobs=jobs, ledger=ledger, models=models, backend=backend, notifiers={},
        media=media, templates=templates, fit_output=fit_output,
        max_concurrent=settings.max_concurrent_jobs,
        max_active_per_user=settings.max_active_jobs_per_user,
        timeout=settings.job_timeout_seconds, webhook_url=webhook_url, posts=posts,
        instance_id=settings.instance_name,
    )
    if isinstance(db, PostgresDatabase):  # jobs on the shared queue
        engine.use_cluster(db, concurrency=settings.worker_concurrency,
                           drain_seconds=settings.drain_seconds)
    studio = Studio(
        ledger=ledger, sessions=sessions, jobs=jobs, engine=engine, models=models,
        templates=templates, media=media,
        limits=StudioLimits(settings.max_video_seconds, settings.glitch_max_seconds),
        default_language=settings.default_language, music_is_bark=models[MUSIC].model_id == settings.model_music_bark,
        posts=posts,
    )
    http = HttpServer(db=db, engine=engine, jobs=jobs, host=settings.http_host,
                      port=settings.http_port, webhooks=backend if webhook_url else None,
                      metrics_token=settings.metrics_token.get_secret_value()
                      if settings.metrics_token else None,
                      seen=RedisSeenWebhooks(shared) if shared else None)
    if shared is not None:
        http.add_check("redis", shared.ping)
    if settings.media_url:  # a shared bucket: an instance cannot serve without it
        http.add_ready_check("media", media.ping)
    account = Account(studio, jobs, engine)
    admin = AdminDesk(ledger, jobs, db, settings.admins)
    desk = Desk(studio, account, admin, PlatformFiles(db, media),
                starter_credits=settings.starter_credits,
                rate_limiter=RedisRateLimiter(shared) if shared else UpdateRateLimiter(),
                inline_rate_limiter=RedisRateLimiter(shared, INLINE_BURST, INLINE_PER_SECOND)
                if shared else UpdateRateLimiter(INLINE_BURST, INLINE_PER_SECOND))
    return Services(
        settings=settings, db=db, ledger=ledger, jobs=jobs, sessions=sessions, media=media,
        backend=backend, engine=engine, studio=studio, account=account, admin=admin, desk=desk,
        http=http, posts=posts, shared=shared,
    )


def require_platform(settings: Settings) -> None:
    if not settings.has_platform_token and not settings.web_enabled:
        raise ConfigError(
            "no platform token: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(in .env or the environment), then run python -m bot again"
        )


def make_adapters(services: Services) -> list[Adapter]:
    settings = services.settings
    require_platform(settings)
    adapters: list[Adapter] = []
    if settings.telegram_bot_token is not None:
        from adapters.telegram.app import TelegramAdapter

        adapters.append(TelegramAdapter(settings, services.desk, shared=services.shared))
    if settings.discord_bot_token is not None:
        from adapters.discord.app import DiscordAdapter

        adapters.append(DiscordAdapter(settings, services.desk, shared=services.shared))
    if settings.web_enabled:
        from adapters.web.app import WebAdapter
        from core.web_pages import WebPages

        services.http.stream_body("/upload")  # the page's uploads stream to disk, under WEB_MAX_UPLOAD_MB
        adapters.append(WebAdapter(settings, services.desk, WebPages(services.db)))
    for adapter in adapters:
        adapter.mount(services.http.app)
        services.engine.with_notifier(adapter.notifier)
    return adapters


async def clean_up(services: Services) -> None:
    """Old media files, the folders they leave empty, expired session rows, and the clips
    of posts older than POST_TTL_DAYS (the post stays; its clip is cleaned like any media)."""
    forgotten = await services.posts.forget_old_clips()
    if forgotten:
        log.info("cleanup: %d posts past POST_TTL_DAYS no longer keep their clip", forgotten)
    await services.media.clean()
    gone = await services.sessions.delete_expired()
    if gone:
        log.info("cleanup: %d expired sessions removed", gone)


async def _clean_media_periodically(services: Services) -> None:
    while True:
        try:
            await clean_up(services)
        except Exception:  # the next hour tries again; the bot keeps serving
            log.exception("cleanup failed")
        await asyncio.sleep(3600)


class Closable(Protocol):
    async def close(self) -> None: ...


async def make_rest_notifiers(services: Services) -> list[Closable]:
    """A worker without chat adapters still delivers: each platform's notifier over its
    REST API (Telegram's Bot API with the token, Discord's REST with the bot token), with
    no polling and no gateway. Returns what to close."""
    settings = services.settings
    made: list[Closable] = []
    if settings.telegram_bot_token is not None:
        from adapters.telegram.app import TelegramAdapter

        # Never run (no polling); its sends still go through the shared send budget.
        telegram = TelegramAdapter(settings, services.desk, shared=services.shared)
        services.engine.with_notifier(telegram.notifier)
        made.append(telegram)
    if settings.discord_bot_token is not None:
        from adapters.discord.app import DiscordAdapter

        discord_ = DiscordAdapter(settings, services.desk, shared=services.shared)
        await discord_.connect_rest()
        services.engine.with_notifier(discord_.notifier)
        made.append(discord_)
    if settings.web_enabled:
        from adapters.web.app import WebAdapter
        from core.web_pages import WebPages

        web_ = WebAdapter(settings, services.desk, WebPages(services.db))
        services.engine.with_notifier(web_.notifier)
        made.append(web_)
    return made


def require_roles(settings: Settings, *, adapters: bool, worker: bool) -> None:
    if not (adapters and worker) and not settings.postgres:
        raise ConfigError(
            "DATABASE_URL: running adapters and workers as separate processes needs "
            "PostgreSQL (postgresql://…); with SQLite use python -m bot run"
        )


async def run_bot(settings: Settings, *, adapters: bool = True, worker: bool = True) -> None:
    """Run the roles asked for until SIGINT/SIGTERM (then drain) or a fatal error."""
    require_roles(settings, adapters=adapters, worker=worker)
    if adapters:
        require_platform(settings)
    services = await build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    running: list[Adapter] = []
    rest: list[Closable] = []
    tasks: list[asyncio.Task[None]] = []
    cluster = services.engine.cluster
    try:
        if adapters:
            running = make_adapters(services)
        else:
            rest = await make_rest_notifiers(services)
        await services.engine.start(worker=worker)
        await services.http.start()
        parts = [type(a).__name__.removesuffix("Adapter").lower() for a in running]
        if cluster is not None and worker:
            parts.append(f"job worker {settings.instance_name} ({settings.worker_concurrency} slots)")
        log.info("LOKIZ running: %s; backend %s", ", ".join(parts) or "nothing",
                 services.backend.name)
        if settings.web_enabled:
            host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "") else settings.http_host
            print(f"LOKIZ web studio: http://{host}:{services.http.bound_port}/", flush=True)
        # What start-up made (modules, models, catalogues) lives as long as the process: out
        # of the collector's sight, a collection while serving walks only what updates make.
        gc.collect()
        gc.freeze()
        tasks = [asyncio.create_task(adapter.run()) for adapter in running]
        if adapters:
            tasks.append(asyncio.create_task(_clean_media_periodically(services)))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        # Drain: not ready any more (load balancers stop sending), no new updates, then
        # the worker finishes its steps or hands them back within DRAIN_SECONDS.
        services.http.draining = True
        log.info("LOKIZ stopping: draining")
        for task in tasks:
            task.cancel()
        for adapter in running:
            with contextlib.suppress(Exception):
                await adapter.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if cluster is not None:
            await cluster.stop_worker()
        for part in rest:
            with contextlib.suppress(Exception):
                await part.close()
        await services.close()
        log.info("LOKIZ stopped")
