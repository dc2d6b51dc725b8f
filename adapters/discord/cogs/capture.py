"""Video in: `/capture`, and videos, photos and typed times/prompts sent in a DM or with a mention."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.components import MODAL_PREFIX, UPLOAD_FORM_PREFIX
from adapters.discord.downloads import is_image, is_video
from adapters.discord.translator import text
from core.desk import ChatContext, Event, PhotoSent, Started, TextTyped, VideoSent

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot


class CaptureCog(commands.Cog, name="capture"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    @app_commands.command(name="capture", description=text("discord.cmd.capture"))
    @app_commands.describe(video=text("discord.opt.capture.video"), at=text("discord.opt.capture.at"))
    async def capture(
        self, interaction: discord.Interaction, video: discord.Attachment, at: str | None = None
    ) -> None:
        await self.bot.serve(interaction, lambda ctx: VideoSent(ctx, self.bot.file(video), at), defer="thinking")

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction) -> None:
        # Forms are answered by custom_id, not by a view kept in memory: a form opened
        # before a restart (or on another instance) still reaches its session.
        if interaction.type is discord.InteractionType.modal_submit:
            data: dict[str, Any] = dict(interaction.data or {})
            if str(data.get("custom_id", "")).startswith((MODAL_PREFIX, UPLOAD_FORM_PREFIX)):
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

        def event(ctx: ChatContext) -> Event:
            if videos:
                return VideoSent(ctx, self.bot.file(videos[0]), words or None)
            if images:
                return PhotoSent(ctx, self.bot.file(images[0]))
            return TextTyped(ctx, words) if words else Started(ctx)  # a bare mention: say hello

        if videos or images or words or message.guild is not None:
            await self.bot.serve_message(message, event)
