"""Video in: `/capture`, and videos, photos and typed times/prompts sent in a DM or with a mention."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.components import MODAL_PREFIX
from adapters.discord.downloads import is_image, is_video
from adapters.discord.render import InteractionReplier, offers, with_note
from adapters.discord.translator import text
from core.i18n import t
from core.studio.replies import ChatContext, Reply

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

log = logging.getLogger(__name__)


class CaptureCog(commands.Cog, name="capture"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    @app_commands.command(name="capture", description=text("discord.cmd.capture"))
    @app_commands.describe(video=text("discord.opt.capture.video"), at=text("discord.opt.capture.at"))
    async def capture(
        self, interaction: discord.Interaction, video: discord.Attachment, at: str | None = None
    ) -> None:
        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            path = await self.bot.fetch(video)
            return time_hint(ctx, lang, await self.bot.services.studio.video(ctx, path, at))

        await self.bot.serve(interaction, work, defer="thinking")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Forms are answered by custom_id, not by a view kept in memory: a form opened
        # before a restart (or on another instance) still reaches its session.
        if interaction.type is discord.InteractionType.modal_submit:
            data: dict[str, Any] = dict(interaction.data or {})
            custom_id = str(data.get("custom_id", ""))
            if custom_id.startswith(MODAL_PREFIX):
                await self.bot.presses.submit(interaction)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """In a DM (or when mentioned) people can just send a video, a photo or a time."""
        me = self.bot.user
        if message.author.bot or me is None:
            return
        if message.guild is not None and me not in message.mentions:
            return
        words = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        videos = [a for a in message.attachments if is_video(a)]
        images = [a for a in message.attachments if is_image(a)]
        studio = self.bot.services.studio

        async def work(ctx: ChatContext, lang: str, first: bool) -> Reply:
            if videos:
                return await studio.video(ctx, await self.bot.fetch(videos[0]), words or None)
            if images:
                return await studio.photo(ctx, await self.bot.fetch(images[0], ".jpg"))
            if words:
                return await studio.text(ctx, words)
            return Reply() if first else await studio.start(ctx)  # a bare mention: say hello

        if videos or images or words or message.guild is not None:
            await self.bot.serve_message(message, work)


def time_hint(ctx: ChatContext, lang: str, reply: Reply) -> Reply:
    """In a server typed text only reaches the bot with a mention: say so on the contact sheet."""
    if ctx.chat_kind != "group":
        return reply
    return with_note(reply, t(lang, "discord.hint.time"), offers("st.at"))
