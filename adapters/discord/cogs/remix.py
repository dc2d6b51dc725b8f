"""The message context menu "Remix this clip": a shared video becomes the template clip."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.downloads import is_video
from core.desk import ChatContext, ClipShared, Event, Unusable
from core.i18n import t

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot


class RemixCog(commands.Cog, name="remix"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot
        # Context menus cannot be declared inside a cog; the cog adds and removes its own.
        # Its name stays "Remix this clip" in every language, as the help texts call it.
        self.menu = app_commands.ContextMenu(name=t("en", "discord.menu.remix"), callback=self.remix)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def remix(self, interaction: discord.Interaction, message: discord.Message) -> None:
        clip = next((a for a in message.attachments if is_video(a)), None)

        def event(ctx: ChatContext) -> Event:
            if clip is None:
                return Unusable(ctx, "discord.no_video_in_message")
            return ClipShared(ctx, self.bot.file(clip), reply_to=str(message.id))

        await self.bot.serve(interaction, event, defer="ephemeral" if clip is None else "thinking")
