"""The channel's social side: `/feed`, `/top`, `/post ID`, `/delete ID`.

A Discord channel (or a DM) is a chat: its feed and its top creators never show
another channel's posts. The Desk decides everything; this cog only turns the
commands into events (the feed's ◀ ▶, 👍, 🌀 and 🗑 are studio buttons, see presses.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.translator import text
from core.desk import FeedAsked, PostAsked, PostDeleteAsked, TopAsked

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

MAX_PAGE = 1000
PostId = app_commands.Range[str, 1, 20]


class SocialCog(commands.Cog, name="social"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    @app_commands.command(name="feed", description=text("discord.cmd.feed"))
    @app_commands.describe(page=text("discord.opt.feed.page"))
    async def feed(self, interaction: discord.Interaction,
                   page: app_commands.Range[int, 1, MAX_PAGE] | None = None) -> None:
        wanted = (page or 1) - 1  # people count pages from 1, the core from 0
        await self.bot.serve(interaction, lambda ctx: FeedAsked(ctx, wanted), defer="thinking")

    @app_commands.command(name="top", description=text("discord.cmd.top"))
    async def top(self, interaction: discord.Interaction) -> None:
        await self.bot.serve(interaction, lambda ctx: TopAsked(ctx), defer="thinking")

    @app_commands.command(name="post", description=text("discord.cmd.post"))
    @app_commands.describe(id=text("discord.opt.post.id"))
    async def post(self, interaction: discord.Interaction, id: PostId) -> None:
        # Only the asker sees it: /post also answers a post's owner in another chat.
        await self.bot.serve(interaction, lambda ctx: PostAsked(ctx, id), defer="ephemeral", private=True)

    @app_commands.command(name="delete", description=text("discord.cmd.delete"))
    @app_commands.describe(id=text("discord.opt.delete.id"))
    async def delete(self, interaction: discord.Interaction, id: PostId) -> None:
        await self.bot.serve(interaction, lambda ctx: PostDeleteAsked(ctx, id), defer="ephemeral",
                             private=True)
