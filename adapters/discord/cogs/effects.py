"""Shortcuts into the studio flow: `/template`, `/glitch` and `/music` go straight to a step.

Each runs the same core calls a user would make by pressing through the
studio (video → Template → a template; clip → image → mode), so prices,
checks and screens are the studio's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from adapters.discord.cogs.capture import time_hint
from adapters.discord.downloads import is_video
from adapters.discord.render import InteractionReplier, with_note
from adapters.discord.translator import text
from core.i18n import t
from core.screens import Screen, encode_action
from core.studio.replies import ChatContext, Reply, Send

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot


def studio_send(reply: Reply) -> Send | None:
    """The reply's new studio message (the one bound to a session), if any."""
    return next((o for o in reply.outs if isinstance(o, Send) and o.session_id), None)


def then(first: Reply, follow: Reply) -> Reply:
    """`first` without its studio message, then `follow` (which continued that session)."""
    kept = [o for o in first.outs if not (isinstance(o, Send) and o.session_id)]
    return Reply([*kept, *follow.outs])


class EffectsCog(commands.Cog, name="effects"):
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    # --- /template -------------------------------------------------------------------
    @app_commands.command(name="template", description=text("discord.cmd.template"))
    @app_commands.describe(video=text("discord.opt.template.video"), at=text("discord.opt.template.at"),
                           template=text("discord.opt.template.template"))
    async def template(self, interaction: discord.Interaction, video: discord.Attachment,
                       at: str | None = None, template: str | None = None) -> None:
        studio = self.bot.services.studio

        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            reply = await studio.video(ctx, await self.bot.fetch(video), at)
            send = studio_send(reply)
            session = await studio.sessions.get(send.session_id) if send and send.session_id else None
            if session is None or session.step != "frame":
                return time_hint(ctx, lang, reply)  # an error, or a contact sheet to pick from first
            follow = await studio.press(ctx, encode_action("st.tpl", (session.id,)))
            if template and template in self._template_ids():
                follow = await studio.press(ctx, encode_action("st.pick", (session.id, template)))
            return then(reply, follow)

        await self.bot.serve(interaction, work, defer="thinking")

    @template.autocomplete("template")
    async def _templates(self, interaction: discord.Interaction,
                         current: str) -> list[app_commands.Choice[str]]:
        lang = await self.bot.language(interaction)
        wanted = current.strip().lower()
        choices = []
        for item in self.bot.services.studio.templates:
            name = item.text("name", lang)
            if wanted in name.lower() or wanted in item.id:
                choices.append(app_commands.Choice(name=name[:100], value=item.id))
        return choices[:25]

    def _template_ids(self) -> set[str]:
        return {item.id for item in self.bot.services.studio.templates}

    async def _clip_in(self, ctx: ChatContext, clip: Path, *, fresh: bool) -> Reply:
        """A template clip: for the frame whose Glitch asked for one, else a new remix."""
        studio = self.bot.services.studio
        user, _, _ = await studio.user(ctx)
        waiting = await studio.sessions.latest(
            user_id=user.id, platform=ctx.platform, chat_id=ctx.chat_id, awaiting=True
        )
        if not fresh and waiting is not None and waiting.awaiting == "clip":
            return await studio.video(ctx, clip, None)
        return await studio.glitch_with_clip(ctx, clip)

    async def _at_step(self, reply: Reply, step: str) -> bool:
        send = studio_send(reply)
        if send is None or send.session_id is None:
            return False
        session = await self.bot.services.studio.sessions.get(send.session_id)
        return session is not None and session.step == step

    # --- /glitch ---------------------------------------------------------------------------
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
        studio = self.bot.services.studio

        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            if clip is None and image is None:
                return Reply([Send(Screen(t(lang, "discord.glitch_needs_input"), ephemeral=True))])
            reply = Reply()
            if clip is not None:
                reply = await self._clip_in(ctx, await self.bot.fetch(clip), fresh=image is not None)
                if studio_send(reply) is None:
                    return reply  # the clip was refused (with the reason)
                if image is None and not await self._at_step(reply, "modes"):
                    return with_note(reply, t(lang, "discord.hint.image"))
            if image is not None:
                if is_video(image):
                    follow = await studio.video(ctx, await self.bot.fetch(image), at)
                else:
                    follow = await studio.photo(ctx, await self.bot.fetch(image, ".jpg"))
                if not follow.outs:
                    return Reply([Send(Screen(t(lang, "discord.glitch_no_waiting"), ephemeral=True))])
                reply = then(reply, follow)
            send = studio_send(reply)
            if mode is not None and send is not None and await self._at_step(reply, "modes"):
                assert send.session_id is not None
                press = await studio.press(ctx, encode_action("st.mode", (send.session_id, mode.value)))
                reply = then(reply, press)
            return reply

        await self.bot.serve(interaction, work, defer="thinking")

    # --- /music ------------------------------------------------------------------------------
    @app_commands.command(name="music", description=text("discord.cmd.music"))
    @app_commands.describe(prompt=text("discord.opt.music.prompt"))
    async def music(self, interaction: discord.Interaction,
                    prompt: app_commands.Range[str, 1, 500] | None = None) -> None:
        studio = self.bot.services.studio

        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            return await studio.music(ctx, prompt)

        await self.bot.serve(interaction, work, defer="thinking")

