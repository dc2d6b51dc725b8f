"""Composition root: settings → services → adapters. The only place that wires.

`build_services` makes the platform-free core; `run_bot` adds every adapter
that has a token, starts the engine and the HTTP server, and runs until a
signal or an adapter's fatal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
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
from core.ratelimit import UpdateRateLimiter
from core.sessions import SESSION_TTL, SessionStore
from core.settings import Settings
from core.storage import Database, open_database
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

    async def close(self) -> None:
        await self.engine.stop()
        await self.http.stop()
        await self.backend.close()
        await self.media.close()
        await self.db.close()


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


def make_backend(settings: Settings, media: MediaStore) -> Backend:
    if settings.backend == "replicate":
        from core.backends.replicate import ReplicateBackend

        assert settings.replicate_api_token is not None
        configured = settings.replicate_webhook_secret
        return ReplicateBackend(
            settings.replicate_api_token.get_secret_value(), settings.replicate_base_url,
            webhook_secret=configured.get_secret_value() if configured else None,
            media=media,  # MEDIA_PUBLIC: inputs go as presigned URLs instead of uploads
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
    models = build_models(settings)
    templates = TemplateCatalogue.load(settings.templates_file)
    backend = make_backend(settings, media)

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
        timeout=settings.job_timeout_seconds, webhook_url=webhook_url,
    )
    studio = Studio(
        ledger=ledger, sessions=sessions, jobs=jobs, engine=engine, models=models,
        templates=templates, media=media,
        limits=StudioLimits(settings.max_video_seconds, settings.glitch_max_seconds),
        default_language=settings.default_language, music_is_bark=models[MUSIC].model_id == settings.model_music_bark,
    )
    http = HttpServer(db=db, engine=engine, jobs=jobs, host=settings.http_host,
                      port=settings.http_port, webhooks=backend if webhook_url else None,
                      metrics_token=settings.metrics_token.get_secret_value()
                      if settings.metrics_token else None)
    account = Account(studio, jobs, engine)
    admin = AdminDesk(ledger, jobs, db, settings.admins)
    desk = Desk(studio, account, admin, PlatformFiles(db, media),
                starter_credits=settings.starter_credits, rate_limiter=UpdateRateLimiter())
    return Services(
        settings=settings, db=db, ledger=ledger, jobs=jobs, sessions=sessions, media=media,
        backend=backend, engine=engine, studio=studio, account=account, admin=admin, desk=desk,
        http=http,
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

        adapters.append(TelegramAdapter(settings, services.desk))
    if settings.discord_bot_token is not None:
        from adapters.discord.app import DiscordAdapter

        adapters.append(DiscordAdapter(settings, services.desk))
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
    """Old media files, the folders they leave empty, and expired session rows."""
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


async def run_bot(settings: Settings) -> None:
    require_platform(settings)
    services = await build_services(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    adapters: list[Adapter] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        adapters = make_adapters(services)
        await services.engine.start()
        await services.http.start()
        log.info(
            "LOKIZ running: %s; backend %s",
            ", ".join(type(a).__name__.removesuffix("Adapter").lower() for a in adapters),
            services.backend.name,
        )
        if settings.web_enabled:
            host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "") else settings.http_host
            print(f"LOKIZ web studio: http://{host}:{services.http.bound_port}/", flush=True)
        # What start-up made (modules, models, catalogues) lives as long as the process: out
        # of the collector's sight, a collection while serving walks only what updates make.
        gc.collect()
        gc.freeze()
        tasks = [asyncio.create_task(adapter.run()) for adapter in adapters]
        tasks.append(asyncio.create_task(_clean_media_periodically(services)))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        for adapter in adapters:
            with contextlib.suppress(Exception):
                await adapter.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await services.close()
        log.info("LOKIZ stopped")
