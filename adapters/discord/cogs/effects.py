"""Shortcuts into the studio flow: `/template`, `/glitch` and `/music` go straight to a step.

The Desk runs them as the steps a user would press through (video → Template →
a template; clip → image → mode), so prices, checks and screens are the studio's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.downloads import is_video
from adapters.discord.translator import text
from core.desk import GlitchShortcut, MusicAsked, TemplateShortcut

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot


class EffectsCog(commands.Cog, name="effects"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    @app_commands.command(name="template", description=text("discord.cmd.template"))
    @app_commands.describe(video=text("discord.opt.template.video"), at=text("discord.opt.template.at"),
                           template=text("discord.opt.template.template"))
    async def template(self, interaction: discord.Interaction, video: discord.Attachment,
                       at: str | None = None, template: str | None = None) -> None:
        file = self.bot.file(video)
        await self.bot.serve(interaction, lambda ctx: TemplateShortcut(ctx, file, at, template), defer="thinking")

    @template.autocomplete("template")
    async def _templates(self, interaction: discord.Interaction,
                         current: str) -> list[app_commands.Choice[str]]:
        choices = self.bot.desk.template_choices(await self.bot.language(interaction), current)
        return [app_commands.Choice(name=name[:100], value=tid) for tid, name in choices[:25]]

    @app_commands.command(name="glitch", description=text("discord.cmd.glitch"))
    @app_commands.describe(clip=text("discord.opt.glitch.clip"), image=text("discord.opt.glitch.image"),
                           mode=text("discord.opt.glitch.mode"), at=text("discord.opt.glitch.at"))
    @app_commands.choices(mode=[
        app_commands.Choice(name=text("discord.choice.animate"), value="animate"),
        app_commands.Choice(name=text("discord.choice.replace"), value="replace"),
    ])
    async def glitch(self, interaction: discord.Interaction, clip: discord.Attachment | None = None,
                     image: discord.Attachment | None = None,
                     mode: app_commands.Choice[str] | None = None, at: str | None = None) -> None:
        clip_file = self.bot.file(clip) if clip is not None else None
        image_file = self.bot.file(image) if image is not None else None
        chosen = mode.value if mode is not None else None
        await self.bot.serve(interaction, lambda ctx: GlitchShortcut(
            ctx, clip_file, image_file, image is not None and is_video(image), chosen, at,
        ), defer="thinking")

    @app_commands.command(name="music", description=text("discord.cmd.music"))
    @app_commands.describe(prompt=text("discord.opt.music.prompt"))
    async def music(self, interaction: discord.Interaction,
                    prompt: app_commands.Range[str, 1, 500] | None = None) -> None:
        await self.bot.serve(interaction, lambda ctx: MusicAsked(ctx, prompt), defer="thinking")
