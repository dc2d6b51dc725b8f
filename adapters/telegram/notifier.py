"""The engine's voice in Telegram chats: one status message per job, then the result."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramNetworkError,
    TelegramServerError,
)
from aiohttp import ClientConnectorError

from adapters.telegram.calls import chat_gone, message_gone, not_modified, with_retry
from adapters.telegram.keyboards import MAX_CAPTION, MAX_TEXT, clip, keyboard, mentioned
from adapters.telegram.outbox import MediaSender, file_id_of, reply_parameters
from core.jobs import Job
from core.notify import MaybeDelivered, NotDelivered, OutputMedia, Receipt, RecipientGone
from core.screens import Screen

log = logging.getLogger(__name__)

MB = 1024 * 1024
UPLOAD_LIMIT = 50 * MB
LOCAL_UPLOAD_LIMIT = 2000 * MB


def send_failure(exc: Exception) -> NotDelivered | MaybeDelivered:
    """Whether a failed send may still have posted the message (Telegram has no idempotency)."""
    if isinstance(exc, TelegramNetworkError):
        if isinstance(exc.__cause__, ClientConnectorError):
            return NotDelivered(str(exc))  # no connection: nothing was sent
        return MaybeDelivered(str(exc))  # timeout or reset: the upload may have landed
    if isinstance(exc, (TelegramServerError, ClientDecodeError)):
        return MaybeDelivered(str(exc))  # a 5xx or garbled answer after the body was sent
    return NotDelivered(str(exc))  # a 4xx (flood control too): Telegram refused it


class TelegramNotifier:
    platform = "telegram"

    def __init__(self, bot: Bot, sender: MediaSender, *, local_server: bool) -> None:
        self.bot = bot
        self.sender = sender
        self.local_server = local_server

    def upload_limit(self, job: Job) -> int:
        return LOCAL_UPLOAD_LIMIT if self.local_server else UPLOAD_LIMIT

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        chat_id = int(job.chat_id)
        text, markup = clip(screen.text, MAX_TEXT), keyboard(screen)
        try:
            if job.status_message_id:
                try:
                    await with_retry(lambda: self.bot.edit_message_text(
                        chat_id=chat_id, message_id=int(job.status_message_id or 0), text=text,
                        reply_markup=markup,
                    ))
                    return job.status_message_id
                except TelegramBadRequest as exc:
                    if not_modified(exc):
                        return job.status_message_id
                    if not message_gone(exc):
                        raise
                    # Deleted by the user (or too old to edit): a new status message takes over.
            message = await with_retry(
                lambda: self.bot.send_message(
                    chat_id=chat_id, text=text, reply_markup=markup,
                    reply_parameters=reply_parameters(job.reply_to_message_id),
                ),
                idempotent=False,
            )
        except TelegramAPIError as exc:
            if chat_gone(exc):
                raise RecipientGone(str(exc)) from exc
            raise
        return str(message.message_id)

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        chat_id = int(job.chat_id)
        action = "upload_video" if media.kind == "video" else "upload_document"
        try:
            with contextlib.suppress(TelegramAPIError):
                await self.bot.send_chat_action(chat_id=chat_id, action=action)
            message = await self.sender.send(
                chat_id, media, text=self._caption(job, screen), markup=keyboard(screen),
                reply_to=job.reply_to_message_id,
            )
        except (TelegramAPIError, ClientDecodeError) as exc:
            if chat_gone(exc):
                raise RecipientGone(str(exc)) from exc
            raise send_failure(exc) from exc
        return Receipt(str(message.message_id), file_id_of(message))

    async def edit_buttons(self, chat_id: str, message_id: str, screen: Screen) -> None:
        try:
            await with_retry(lambda: self.bot.edit_message_reply_markup(
                chat_id=int(chat_id), message_id=int(message_id), reply_markup=keyboard(screen)))
        except TelegramBadRequest as exc:
            if not (not_modified(exc) or message_gone(exc)):
                raise

    def _caption(self, job: Job, screen: Screen) -> dict[str, Any]:
        """The result caption; in a group it starts by mentioning who asked for it."""
        text = clip(screen.text, MAX_CAPTION - 80)
        # A private chat's id is the user's id; a job from before owners travelled names no one.
        if int(job.chat_id) > 0 or not (job.owner_id and job.owner_id.isdigit()):
            return {"caption": text}
        return mentioned(text, int(job.owner_id), job.owner_name or job.owner_id)
