"""Account answers, only for the caller: `/balance`, `/jobs`, `/job`, `/lang`, `/help`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.translator import text
from core.desk import AccountAsked, LanguageChosen

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot


class AccountCog(commands.Cog, name="account"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    async def _ask(self, interaction: discord.Interaction, what: str, job_id: str = "") -> None:
        await self.bot.serve(interaction, lambda ctx: AccountAsked(ctx, what, job_id), defer="ephemeral")

    @app_commands.command(name="balance", description=text("discord.cmd.balance"))
    async def balance(self, interaction: discord.Interaction) -> None:
        await self._ask(interaction, "balance")

    @app_commands.command(name="jobs", description=text("discord.cmd.jobs"))
    async def jobs(self, interaction: discord.Interaction) -> None:
        await self._ask(interaction, "jobs")

    @app_commands.command(name="job", description=text("discord.cmd.job"))
    @app_commands.describe(id=text("discord.opt.job.id"))
    async def job(self, interaction: discord.Interaction, id: app_commands.Range[str, 1, 40]) -> None:
        await self._ask(interaction, "job", id)

    @app_commands.command(name="lang", description=text("discord.cmd.lang"))
    @app_commands.describe(language=text("discord.opt.lang.language"))
    @app_commands.choices(language=[
        app_commands.Choice(name="English", value="en"),
        app_commands.Choice(name="한국어", value="ko"),
    ])
    async def lang(self, interaction: discord.Interaction,
                   language: app_commands.Choice[str] | None = None) -> None:
        code = language.value if language else ""
        await self.bot.serve(interaction, lambda ctx: LanguageChosen(ctx, code), defer="ephemeral")

    @app_commands.command(name="help", description=text("discord.cmd.help"))
    async def help(self, interaction: discord.Interaction) -> None:
        await self._ask(interaction, "help")
