"""The Telegram adapter: aiogram Bot + Dispatcher over the shared core (SPEC §2, §6).

Long polling by default; with `TELEGRAM_WEBHOOK=true` updates arrive at
`PUBLIC_URL/webhooks/telegram` on the core's HTTP server, checked by secret token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from adapters.telegram.commands import publish_commands
from adapters.telegram.dispatcher import build_dispatcher
from adapters.telegram.media import Downloads
from adapters.telegram.notifier import TelegramNotifier
from adapters.telegram.outage import RedisOutageRetry
from adapters.telegram.outbox import MediaSender
from adapters.telegram.render import Renderer
from adapters.telegram.session import KeptModelsSession
from core.desk import Desk
from core.notify import Notifier
from core.redis_shared import RedisSendBudget, RedisShared, RedisUpdateClaims
from core.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/telegram"


def webhook_secret(token: str, configured: str | None) -> str:
    """TELEGRAM_WEBHOOK_SECRET, or one derived from the token (Telegram allows [A-Za-z0-9_-])."""
    return configured or hashlib.sha256(token.encode()).hexdigest()[:32]


class TelegramAdapter:
    """Given its settings and the Desk; `notifier` is the engine's voice in Telegram chats."""

    def __init__(self, settings: Settings, desk: Desk, *, shared: RedisShared | None = None) -> None:
        """`shared` (REDIS_URL): isolation, update claims and the send budget live in Redis,
        for several replicas of one bot."""
        assert settings.telegram_bot_token is not None
        token = settings.telegram_bot_token.get_secret_value()
        self.local_server = settings.telegram_api_local
        api = TelegramAPIServer.from_base(settings.telegram_api_base, is_local=self.local_server)
        self.bot = Bot(token, session=KeptModelsSession(api=api))
        self.shared = shared
        if shared is not None:
            from adapters.telegram.shared import SendBudgetMiddleware

            self.bot.session.middleware(SendBudgetMiddleware(RedisSendBudget(shared, str(self.bot.id))))
        sender = MediaSender(self.bot, desk.files)
        self.renderer = Renderer(self.bot, desk, sender)
        self.downloads = Downloads(self.bot, desk, local_server=self.local_server,
                                   max_download_mb=settings.max_download_mb)
        self.notifier: Notifier = TelegramNotifier(self.bot, sender, local_server=self.local_server)
        fsm = None
        self.redis_retry: RedisOutageRetry | None = None
        if shared is not None:
            from adapters.telegram.shared import fsm_parts

            fsm = fsm_parts(shared, settings.telegram_update_lease_seconds)
            if not settings.telegram_webhook:  # a polled update is not sent again: retried here
                self.redis_retry = RedisOutageRetry(self.renderer,
                                                    window=settings.telegram_redis_retry_seconds)
        self.dp = build_dispatcher(desk, self.renderer, self.downloads, shared=fsm,
                                   redis_retry=self.redis_retry)
        self.max_connections = settings.telegram_webhook_max_connections
        self.lease = settings.telegram_update_lease_seconds
        self.webhook_url: str | None = None
        self.secret: str | None = None
        if settings.telegram_webhook:
            assert settings.public_url is not None
            configured = settings.telegram_webhook_secret
            self.secret = webhook_secret(token, configured.get_secret_value() if configured else None)
            self.webhook_url = settings.public_url.rstrip("/") + WEBHOOK_PATH

    def mount(self, app: web.Application) -> None:
        """The webhook route (routes must exist before the HTTP server starts, before run())."""
        if self.webhook_url is None:
            return
        if self.shared is not None:  # replicas: each update once, in the foreground
            from adapters.telegram.shared import ClaimingWebhookHandler

            claims = RedisUpdateClaims(self.shared, f"telegram:{self.bot.id}", lease=self.lease)
            ClaimingWebhookHandler(self.dp, self.bot, claims, secret_token=self.secret).register(
                app, path=WEBHOOK_PATH)
            return
        SimpleRequestHandler(
            self.dp, self.bot, handle_in_background=True, secret_token=self.secret
        ).register(app, path=WEBHOOK_PATH)

    async def run(self) -> None:
        await publish_commands(self.bot)
        me = await self.bot.me()
        if not me.supports_inline_queries:
            log.info("telegram: inline mode is off; to share clips with @%s, send /setinline"
                     " to @BotFather", me.username)
        if self.webhook_url is not None:
            assert self.secret is not None
            if self.shared is not None:
                from adapters.telegram.shared import set_webhook_once

                if not await set_webhook_once(
                    self.bot, self.shared, url=self.webhook_url, secret=self.secret,
                    max_connections=self.max_connections,
                    allowed_updates=self.dp.resolve_used_update_types(),
                ):
                    log.info("telegram: the webhook was already set by another instance")
            else:
                await self.bot.set_webhook(
                    self.webhook_url, secret_token=self.secret,
                    max_connections=self.max_connections,
                    allowed_updates=self.dp.resolve_used_update_types(),
                )
            log.info("telegram: receiving updates by webhook at %s", self.webhook_url)
            await asyncio.Event().wait()  # the HTTP server feeds the dispatcher
            return
        if self.shared is not None:
            log.warning("telegram: long polling with REDIS_URL: run one such instance only"
                        " (replicas take updates by webhook, TELEGRAM_WEBHOOK=true); while Redis"
                        " is unreachable an update is retried for TELEGRAM_REDIS_RETRY_SECONDS")
        await self.bot.delete_webhook(drop_pending_updates=False)
        polling = asyncio.create_task(self.dp.start_polling(
            self.bot, handle_signals=False, close_bot_session=False,
            allowed_updates=self.dp.resolve_used_update_types(),
        ))
        try:
            await asyncio.shield(polling)
        except asyncio.CancelledError:
            # Stop the poller cleanly (its own tasks end with it), then finish cancelling.
            with contextlib.suppress(RuntimeError):
                await self.dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await polling
            raise

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.dp.stop_polling()
        if self.redis_retry is not None:  # updates still waiting for Redis: tell their users now
            await self.redis_retry.give_up()
        await self.bot.session.close()
