"""Button presses, select choices and form submits: acknowledged at once, decided by the core."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.components import MODAL_PREFIX, modal_answer
from adapters.discord.render import InteractionReplier, with_note
from core.i18n import t
from core.screens import decode_action
from core.studio.replies import ChatContext, Reply

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

# How long a press that may open a form waits for the core before it must defer instead
# (a form has to be the first answer, and every answer must come within 3 s).
FORM_DECISION_SECONDS = 2.0
# Presses whose next step asks for an upload, which on Discord goes through /glitch.
_UPLOAD_HINTS = {"st.glitch": "discord.hint.clip", "job.remix": "discord.hint.image"}


class Presses:
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    async def press(self, interaction: discord.Interaction, data: str) -> None:
        """A studio button or select: the core checks the owner and decides what changes."""
        decoded = decode_action(data)
        action = decoded[0] if decoded else ""
        studio = self.bot.services.studio

        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            if action != "st.custom":
                reply = await studio.press(ctx, data)
            else:
                # This press may open a form, which must be the first answer: ask the core
                # first (a quick write) and defer only if it is slow.
                decision = asyncio.ensure_future(studio.press(ctx, data))
                done, _ = await asyncio.wait({decision}, timeout=FORM_DECISION_SECONDS)
                if not done:
                    await replier.defer_update()
                reply = await decision
            hint = _UPLOAD_HINTS.get(action)
            return with_note(reply, t(lang, hint)) if hint else reply

        await self.bot.serve(interaction, work, defer="form" if action == "st.custom" else "update")

    async def submit(self, interaction: discord.Interaction) -> None:
        """A LOKIZ form was submitted (a custom prompt): the answer goes to its session."""
        data: dict[str, Any] = dict(interaction.data or {})
        session_id = str(data.get("custom_id", ""))[len(MODAL_PREFIX):]
        text = modal_answer(data)

        async def work(ctx: ChatContext, lang: str, replier: InteractionReplier) -> Reply:
            return await self.bot.services.studio.typed(ctx, session_id, text)

        await self.bot.serve(interaction, work, defer="thinking")
