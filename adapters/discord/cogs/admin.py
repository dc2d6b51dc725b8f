"""Admin commands: `/grant`, `/revoke`, `/credits`, `/stats`.

Hidden from members without the Administrator permission (`default_member_permissions`),
and checked against `ADMIN_IDS` by the core, which logs every attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.translator import text
from core.desk import AdminCommand

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

Amount = app_commands.Range[int, 1, 1_000_000]
Reason = app_commands.Range[str, 1, 200]


class AdminCog(commands.Cog, name="admin"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    async def _run(self, interaction: discord.Interaction, command: str, args: list[str]) -> None:
        await self.bot.serve(interaction, lambda ctx: AdminCommand(ctx, command, tuple(args)), defer="ephemeral")

    @app_commands.command(name="grant", description=text("discord.cmd.grant"))
    @app_commands.default_permissions(administrator=True)
    @app_commands.describe(user=text("discord.opt.admin.user"), amount=text("discord.opt.admin.amount"),
                           reason=text("discord.opt.admin.reason"))
    async def grant(self, interaction: discord.Interaction, user: discord.User, amount: Amount,
                    reason: Reason | None = None) -> None:
        await self._run(interaction, "grant", [str(user.id), str(amount), *(reason or "").split()])

    @app_commands.command(name="revoke", description=text("discord.cmd.revoke"))
    @app_commands.default_permissions(administrator=True)
    @app_commands.describe(user=text("discord.opt.admin.user"), amount=text("discord.opt.admin.amount"),
                           reason=text("discord.opt.admin.reason"))
    async def revoke(self, interaction: discord.Interaction, user: discord.User, amount: Amount,
                     reason: Reason | None = None) -> None:
        await self._run(interaction, "revoke", [str(user.id), str(amount), *(reason or "").split()])

    @app_commands.command(name="credits", description=text("discord.cmd.credits"))
    @app_commands.default_permissions(administrator=True)
    @app_commands.describe(user=text("discord.opt.admin.user"))
    async def credits(self, interaction: discord.Interaction, user: discord.User) -> None:
        await self._run(interaction, "credits", [str(user.id)])

    @app_commands.command(name="stats", description=text("discord.cmd.stats"))
    @app_commands.default_permissions(administrator=True)
    async def stats(self, interaction: discord.Interaction) -> None:
        await self._run(interaction, "stats", [])
