"""Button presses, select choices and form submits: acknowledged in time, decided by the Desk."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.components import (
    MODAL_PREFIX,
    UPLOAD_FORM_PREFIX,
    Upload,
    modal_answer,
    upload_modal,
    uploaded,
)
from adapters.discord.downloads import is_video
from adapters.discord.render import in_time
from core.actions import CustomPrompt
from core.desk import AnswerTooLate, FormAnswered, Pressed
from core.i18n import t

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

log = logging.getLogger(__name__)


class Presses:
    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot

    async def press(self, interaction: discord.Interaction, data: str) -> None:
        """A studio button or select: the Desk checks the owner and decides what changes."""
        upload = Upload.unpack(data)
        if upload is not None:  # Discord's own step: the file form (the Desk gets the file)
            lang = await self.bot.language(interaction)
            modal = upload_modal(upload.session, t(lang, f"discord.upload_title.{upload.kind}"),
                                 t(lang, f"discord.upload_label.{upload.kind}"))
            try:
                with in_time(interaction):
                    await interaction.response.send_modal(modal)
            except AnswerTooLate as late:  # as the Desk notes it: one line, no traceback
                log.warning("discord: the upload form not opened: %s", late)
            return
        # "Type a prompt" may open a form, which must be the first answer: no defer up front.
        defer = "form" if CustomPrompt.unpack(data) is not None else "update"
        await self.bot.serve(interaction, lambda ctx: Pressed(ctx, data), defer=defer)

    async def submit(self, interaction: discord.Interaction) -> None:
        """A LOKIZ form was submitted: a typed prompt, or an uploaded file, for its session."""
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if custom_id.startswith(UPLOAD_FORM_PREFIX):
            attachment = uploaded(interaction)
            session_id = custom_id[len(UPLOAD_FORM_PREFIX):]
            file = self.bot.file(attachment) if attachment is not None else None
            video = attachment is not None and is_video(attachment)
            await self.bot.serve(interaction, lambda ctx: FormAnswered(ctx, session_id, file=file, is_video=video),
                                 defer="thinking")
            return
        session_id, text = custom_id[len(MODAL_PREFIX):], modal_answer(data)
        await self.bot.serve(interaction, lambda ctx: FormAnswered(ctx, session_id, text), defer="thinking")
