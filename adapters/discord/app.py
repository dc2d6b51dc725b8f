"""The Discord adapter: a discord.py 2 bot that renders the core's studio.

`DiscordAdapter(settings, desk)` is what the composition root runs: `run()` logs in and serves
until cancelled, `close()` disconnects, `notifier` is the engine's voice here.
`LokizBot.setup_hook` adds one cog per feature, registers the restart-proof
components and syncs the application commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web
from discord.ext import commands

from adapters.discord.cogs.account import AccountCog
from adapters.discord.cogs.admin import AdminCog
from adapters.discord.cogs.capture import CaptureCog
from adapters.discord.cogs.effects import EffectsCog
from adapters.discord.cogs.remix import RemixCog
from adapters.discord.components import StudioButton, StudioSelect
from adapters.discord.context import interaction_context, message_context
from adapters.discord.downloads import Attached, DiscordFile, Downloader, is_video
from adapters.discord.notifier import DiscordNotifier
from adapters.discord.presses import Presses
from adapters.discord.render import InteractionReplier, MessageReplier
from adapters.discord.translator import CatalogueTranslator
from core.desk import ChatContext, Desk, Event
from core.errors import SharedStoreDown
from core.notify import Notifier
from core.redis_shared import RedisShared, RedisWindowLock
from core.settings import Settings

log = logging.getLogger(__name__)

API_VERSION = 10
# A 429 asking us to wait longer than this raises instead of sleeping (the engine retries later).
MAX_RATELIMIT_WAIT = 30.0

MakeEvent = Callable[[ChatContext], Event]


def api_base(raw: str) -> str:
    """`DISCORD_API_BASE` as discord.py's `Route.BASE`: `…/api/v10` added unless already there."""
    base = raw.strip().rstrip("/")
    if re.search(r"/api/v\d+$", base):
        return base
    if base.endswith("/api"):
        return f"{base}/v{API_VERSION}"
    return f"{base}/api/v{API_VERSION}"


def point_discord_py(api: str | None, gateway: str | None) -> None:
    """Send discord.py's REST and gateway traffic to a proxy or a test server (process-wide)."""
    if api:
        discord.http.Route.BASE = api_base(api)
    if gateway:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)


IDENTIFY_WINDOW = 5.0  # seconds between two IDENTIFYs of one bucket (max_concurrency 1)


class LokizBot(commands.Bot):
    def __init__(self, settings: Settings, desk: Desk, *, shared: RedisShared | None = None,
                 **sharding: Any) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # no message-content intent: not needed
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT,
            guild_ready_timeout=1.0,
            **sharding,
        )
        # Several processes of one bot space their IDENTIFYs through Redis (one per 5 s).
        self._identify = RedisWindowLock(shared, "discord-identify", IDENTIFY_WINDOW) \
            if shared is not None else None
        self.desk = desk
        self.default_language = settings.default_language
        self.presses = Presses(self)
        self.notifier = DiscordNotifier(self)
        self.downloader = Downloader(desk)
        self.connected = asyncio.Event()
        self.rest_only = False  # a worker's client: REST calls only, no gateway, no commands

    async def setup_hook(self) -> None:
        if self.rest_only:
            return
        self.add_dynamic_items(StudioButton, StudioSelect)
        for cog in (CaptureCog(self), EffectsCog(self), RemixCog(self), AccountCog(self), AdminCog(self)):
            await self.add_cog(cog)
        await self.tree.set_translator(CatalogueTranslator())
        try:
            synced = await self.tree.sync()
        except discord.HTTPException as exc:  # the commands of the last sync still work
            log.warning("discord: application commands not synced (%s); keeping the last set", exc)
        else:
            log.info("discord: %d application commands synced", len(synced))

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        if self._identify is None:
            await super().before_identify_hook(shard_id, initial=initial)
            return
        # The bucket of a shard is shard_id % max_concurrency; without GET /gateway/bot
        # (DISCORD_SHARD_COUNT given) discord.py assumes max_concurrency 1: one bucket.
        try:
            await self._identify.take(0)
        except SharedStoreDown:
            log.warning("discord: identify lock unavailable; waiting %gs instead", IDENTIFY_WINDOW)
            if not initial:
                await asyncio.sleep(IDENTIFY_WINDOW)

    async def on_ready(self) -> None:
        self.connected.set()
        log.info("discord: connected as %s in %d servers", self.user, len(self.guilds))

    async def on_message(self, message: discord.Message) -> None:
        """Prefix commands are not used; the capture cog listens to messages."""

    async def close(self) -> None:
        self.connected.clear()
        await super().close()
        await self.downloader.close()

    # --- shared by the cogs ---------------------------------------------------------
    async def language(self, interaction: discord.Interaction) -> str:
        """The caller's language: their /lang choice, else their client's locale (read only)."""
        return await self.desk.language("discord", str(interaction.user.id), str(interaction.locale.value))

    def file(self, attachment: Attached) -> DiscordFile:
        """An attachment for the Desk, fetched when it is needed."""
        return DiscordFile(self.downloader, attachment, ".mp4" if is_video(attachment) else ".jpg")

    async def serve(self, interaction: discord.Interaction, make: MakeEvent, *, defer: str) -> None:
        """One interaction through the Desk, acknowledged in time (see `InteractionReplier`);
        never leaves a "thinking…" message behind."""
        ctx = interaction_context(interaction)
        self.notifier.learn_limit(ctx.chat_id, interaction.filesize_limit)
        replier = InteractionReplier(self, interaction, defer)
        try:
            await self.desk.serve(make(ctx), replier)
        finally:
            with contextlib.suppress(Exception):  # shutting down, or the token expired
                await replier.finish()

    async def serve_message(self, message: discord.Message, make: MakeEvent) -> None:
        """A plain message (DM or mention) through the Desk, answered with channel messages."""
        async with message.channel.typing():
            await self.desk.serve(make(message_context(message)), MessageReplier(self, message))


class ShardedLokizBot(LokizBot, commands.AutoShardedBot):
    """LOKIZ on some shards of a bot sharded over processes (DISCORD_SHARD_IDS of
    DISCORD_SHARD_COUNT): Discord sends each guild's events (and DMs, to shard 0) to its
    shard only, and presses carry all they need, so any process may own any shard."""


class DiscordAdapter:
    """The composition root's handle on Discord (its `Adapter` protocol)."""

    def __init__(self, settings: Settings, desk: Desk, *, shared: RedisShared | None = None) -> None:
        assert settings.discord_bot_token is not None
        point_discord_py(settings.discord_api_base, settings.discord_gateway_url)
        self._token = settings.discord_bot_token.get_secret_value()
        if settings.discord_shard_count is not None:
            self.bot: LokizBot = ShardedLokizBot(
                settings, desk, shared=shared, shard_ids=settings.shard_ids,
                shard_count=settings.discord_shard_count)
            log.info("discord: shards %s of %d", settings.shard_ids, settings.discord_shard_count)
        else:
            self.bot = LokizBot(settings, desk, shared=shared)
        self.notifier: Notifier = self.bot.notifier

    def mount(self, app: web.Application) -> None:
        """Discord reaches the bot over its gateway: no webhook routes."""

    async def connect_rest(self) -> None:
        """Log in for REST only (a worker with no gateway): results and status messages go
        out with the bot token; no session, no events, no command sync."""
        self.bot.rest_only = True
        await self.bot.login(self._token)
        self.bot.connected.set()

    async def run(self) -> None:
        """Log in and stay connected (discord.py reconnects) until cancelled."""
        await self.bot.start(self._token, reconnect=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bot.close()
