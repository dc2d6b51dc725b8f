"""The Discord adapter: a discord.py 2 bot that renders the core's studio.

`DiscordAdapter(services)` is what `bot.app` runs: `run()` logs in and serves
until cancelled, `close()` disconnects, `notifier` is the engine's voice here.
`LokizBot.setup_hook` adds one cog per feature, registers the restart-proof
components and syncs the application commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import discord
import discord.gateway
import discord.http
import yarl
from discord.ext import commands

from adapters.discord.cogs.account import AccountCog
from adapters.discord.cogs.admin import AdminCog
from adapters.discord.cogs.capture import CaptureCog
from adapters.discord.cogs.effects import EffectsCog
from adapters.discord.cogs.remix import RemixCog
from adapters.discord.components import StudioButton, StudioSelect
from adapters.discord.context import interaction_context, locale_language, message_context
from adapters.discord.downloads import Downloader, DownloadFailed
from adapters.discord.notifier import DiscordNotifier
from adapters.discord.presses import Presses
from adapters.discord.render import InteractionReplier, MessageReplier
from adapters.discord.translator import CatalogueTranslator
from core.errors import LokizError
from core.i18n import t
from core.notify import Notifier
from core.studio import views
from core.studio.replies import Alert, ChatContext, Reply, Send

if TYPE_CHECKING:
    from bot.app import Services

log = logging.getLogger(__name__)

API_VERSION = 10
# A 429 asking us to wait longer than this raises instead of sleeping (the engine retries later).
MAX_RATELIMIT_WAIT = 30.0

InteractionWork = Callable[[ChatContext, str, InteractionReplier], Awaitable[Reply | None]]
MessageWork = Callable[[ChatContext, str, bool], Awaitable[Reply]]


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


class LokizBot(commands.Bot):
    def __init__(self, services: Services) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),  # no message-content intent: not needed
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            max_ratelimit_timeout=MAX_RATELIMIT_WAIT,
            guild_ready_timeout=1.0,
        )
        self.services = services
        self.presses = Presses(self)
        self.notifier = DiscordNotifier(self)
        self.downloader = Downloader(services.media)
        self.connected = asyncio.Event()

    async def setup_hook(self) -> None:
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
        """The caller's language: their /lang choice, else their client's locale."""
        ctx = interaction_context(interaction)
        user = await self.services.ledger.users.find(ctx.platform, ctx.user_id)
        if user is not None:
            return self.services.studio.language_of(user, ctx)
        return locale_language(interaction, self.services.settings.default_language)

    async def fetch(self, attachment: discord.Attachment, default_suffix: str = ".mp4") -> Path:
        return await self.downloader.fetch(attachment, default_suffix)

    async def serve(self, interaction: discord.Interaction, work: InteractionWork, *,
                    defer: str | None = None) -> None:
        """Answer one interaction: rate limit, acknowledge in time, run `work`, render its reply.

        `defer`: "thinking" / "ephemeral" (a command: a loading message), "update" (a press:
        the pressed message will change), "form" (a press that may open a form, which must
        be the first answer: `work` decides), or None (`work` answers by itself). Never
        leaves the user without an answer."""
        lang = locale_language(interaction, self.services.settings.default_language)
        replier = InteractionReplier(self, interaction, lang)
        ctx = interaction_context(interaction)
        self.notifier.learn_limit(ctx.chat_id, interaction.filesize_limit)
        try:
            if not self.services.rate_limiter.allow(f"discord:{ctx.user_id}"):
                await replier.alert(t(lang, "error.slow_down"))
                return
            if defer in ("thinking", "ephemeral"):
                await replier.defer_thinking(ephemeral=defer == "ephemeral")
            elif defer == "update":
                await replier.defer_update()
            if defer != "form":  # a form must be the first answer: the work decides quickly
                user, lang, first = await self.services.studio.user(ctx)
                replier.lang = lang
            reply = await work(ctx, lang, replier)
            if defer == "form":
                user, lang, first = await self.services.studio.user(ctx)
                replier.lang = lang
            if reply is not None:
                await replier.render(reply)
            if first and not replier.opened_form:  # after a form, its submit comes first
                welcome = views.welcome(lang, user.balance, self.services.settings.starter_credits)
                await replier.send(replace(welcome, ephemeral=True))
        except LokizError as exc:
            await self._quietly(replier.alert(t(lang, exc.key, **exc.params)))
        except DownloadFailed as exc:
            log.warning("discord: attachment download failed: %s", exc)
            await self._quietly(replier.alert(t(lang, "discord.download_failed")))
        except discord.NotFound as exc:
            log.warning("discord: interaction %s could not be answered: %s", interaction.id, exc)
        except Exception:
            if self.is_closed():  # shutting down mid-answer: nothing to tell anyone
                log.info("discord: interaction %s cut short by shutdown", interaction.id)
                return
            log.exception("discord: interaction %s failed", interaction.id)
            await self._quietly(replier.alert(t(lang, "error.generic")))
        finally:
            await self._quietly(replier.finish())

    async def serve_message(self, message: discord.Message, work: MessageWork) -> None:
        """Answer a plain message (DM or mention) with channel messages; greet a first-timer."""
        ctx = message_context(message)
        lang: str = self.services.settings.default_language
        replier = MessageReplier(self, message, lang)
        try:
            if not self.services.rate_limiter.allow(f"discord:{ctx.user_id}"):
                user, lang, _ = await self.services.studio.user(ctx)
                await replier.render(Reply().add(Alert(t(lang, "error.slow_down"))))
                return
            user, lang, first = await self.services.studio.user(ctx)
            replier.lang = lang
            async with message.channel.typing():
                reply = await work(ctx, lang, first)
            if first:
                starter = self.services.settings.starter_credits
                reply.outs.insert(0, Send(views.welcome(lang, user.balance, starter)))
            await replier.render(reply)
        except LokizError as exc:
            await self._quietly(replier.render(Reply().add(Alert(t(lang, exc.key, **exc.params)))))
        except DownloadFailed as exc:
            log.warning("discord: attachment download failed: %s", exc)
            await self._quietly(replier.render(Reply().add(Alert(t(lang, "discord.download_failed")))))
        except Exception:
            log.exception("discord: message %s failed", message.id)
            await self._quietly(replier.render(Reply().add(Alert(t(lang, "error.generic")))))

    @staticmethod
    async def _quietly(answer: Awaitable[None]) -> None:
        try:
            await answer
        except Exception:
            log.warning("discord: could not tell the user about an error", exc_info=True)


class DiscordAdapter:
    """The composition root's handle on Discord (see `bot.app.Adapter`)."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        assert settings.discord_bot_token is not None
        point_discord_py(settings.discord_api_base, settings.discord_gateway_url)
        self._token = settings.discord_bot_token.get_secret_value()
        self.bot = LokizBot(services)
        self.notifier: Notifier = self.bot.notifier

    async def run(self) -> None:
        """Log in and stay connected (discord.py reconnects) until cancelled."""
        await self.bot.start(self._token, reconnect=True)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.bot.close()
