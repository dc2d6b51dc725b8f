"""Rendering a core `Reply` as Bot API calls: messages, photos, in-place edits, media,
and press answers (within Telegram's few seconds, alerts included)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections import OrderedDict
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, FSInputFile, InlineKeyboardMarkup, InputMediaPhoto, Message

from adapters.telegram.calls import bad_file_id, message_gone, not_modified, with_retry, wrong_kind
from adapters.telegram.keyboards import (
    MAX_ALERT,
    MAX_CAPTION,
    MAX_TEXT,
    clip,
    fits_caption,
    keyboard,
    mentioned,
    session_of,
    updated_keyboard,
)
from adapters.telegram.outbox import MediaSender, reply_parameters
from core.desk import (
    Alert,
    AskText,
    Awaiting,
    ChatContext,
    Desk,
    Edit,
    FeedClip,
    Reply,
    Send,
    SendFeed,
    SendMedia,
)
from core.desk.deadline import Deadline
from core.i18n import t
from core.screens import Screen

# In a group (privacy mode) the bot only sees replies to its messages: say so where input is awaited.
_GROUP_HINTS = {
    Awaiting.IMAGE: "telegram.reply_with_photo",
    Awaiting.CLIP: "telegram.reply_with_clip",
    Awaiting.PROMPT: "telegram.reply_with_text",
    Awaiting.MUSIC_PROMPT: "telegram.reply_with_text",
    Awaiting.TIME: "telegram.reply_with_time",
}
_REMEMBERED = 2048
# Telegram shows a spinner until a press is answered; past this the answer goes out
# empty and anything the core wanted to alert is said in the chat instead.
ANSWER_WITHIN = 3.0


class _Lru(OrderedDict[tuple[int, int] | str, str]):
    def remember(self, key: tuple[int, int] | str, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _REMEMBERED:
            self.popitem(last=False)


class Renderer:
    """Turns the core's answer to one update into messages in that update's chat."""

    def __init__(self, bot: Bot, desk: Desk, sender: MediaSender) -> None:
        self.bot = bot
        self.desk = desk
        self.sender = sender
        self._photo_ids = _Lru()  # image path → Telegram file id (scrubbing back re-sends nothing)
        self._kinds = _Lru()  # (chat, message) → "caption" | "text": how to edit its words

    def outlet(self, ctx: ChatContext, query: CallbackQuery | None = None, *,
               answered: bool = False) -> Outlet:
        """How the Desk answers one update here (a press is also answered as a press, unless
        `answered` already: then its alerts go to the chat)."""
        return Outlet(self, ctx, query, answered=answered)

    async def render(self, reply: Reply, ctx: ChatContext, *, skip_alerts: bool = False,
                     pressed: Message | None = None) -> None:
        # In a private chat the user's message is right above the answer: quoting it adds
        # nothing (and the quote comes back inside every answer, parsed again). Groups quote.
        just_sent = ctx.message_id if ctx.chat_kind == "private" and pressed is None else None

        def quoted(message_id: str | None) -> str | None:
            return None if message_id == just_sent else message_id

        for out in reply.outs:
            if isinstance(out, Edit) and out.buttons_only and pressed is not None \
                    and str(pressed.message_id) == out.message_id:
                # A post's 👍 among other buttons (the owner's 🗑 under /post) changes alone.
                patched = updated_keyboard(pressed.reply_markup, out.screen)
                if patched is not None:
                    await self.set_buttons(int(ctx.chat_id), pressed.message_id, patched)
                    continue
            if isinstance(out, Send):
                await self.send(ctx, out.screen, reply_to=quoted(out.reply_to), session_id=out.session_id,
                                hint=self._hint(ctx, reply, out.session_id))
            elif isinstance(out, Edit):
                await self.edit(ctx, out)
            elif isinstance(out, AskText):
                await self.ask(ctx, out, reply.lang)
            elif isinstance(out, SendMedia):
                await self.send_media(ctx, out)
            elif isinstance(out, SendFeed):
                await self.send_feed(ctx, out)
            elif isinstance(out, Alert) and not skip_alerts:
                await self.send(ctx, Screen(out.text), reply_to=quoted(ctx.message_id))

    # --- new messages ------------------------------------------------------------
    async def send(
        self, ctx: ChatContext, screen: Screen, *, reply_to: str | None, session_id: str | None = None,
        hint: str = "",
    ) -> Message:
        chat_id = int(ctx.chat_id)
        text = f"{screen.text}\n\n{hint}" if hint else screen.text
        markup = keyboard(screen)
        reply = reply_parameters(reply_to)
        if screen.image is not None and fits_caption(text):
            message = await self._send_photo(chat_id, screen.image, text, markup, reply_to)
        else:
            if screen.image is not None:  # a caption holds 1024 characters: picture, then words
                await self._send_photo(chat_id, screen.image, None, None, reply_to)
                reply = None
            message = await with_retry(
                lambda: self.bot.send_message(
                    chat_id=chat_id, text=clip(text, MAX_TEXT), reply_markup=markup,
                    reply_parameters=reply,
                ),
                idempotent=False,
            )
            self._kinds.remember((chat_id, message.message_id), "text")
        if session_id is not None:
            await self.desk.bind_message(session_id, str(message.message_id))
        return message

    async def _send_photo(
        self, chat_id: int, image: Path, caption: str | None, markup: InlineKeyboardMarkup | None,
        reply_to: str | None,
    ) -> Message:
        known = self._photo_ids.get(str(image))
        if known is not None:
            try:
                return await self._photo(chat_id, known, caption, markup, reply_to)
            except TelegramBadRequest as exc:
                if not bad_file_id(exc):
                    raise
        return await self._photo(chat_id, None, caption, markup, reply_to, image)

    async def _photo(
        self, chat_id: int, file_id: str | None, caption: str | None,
        markup: InlineKeyboardMarkup | None, reply_to: str | None, image: Path | None = None,
    ) -> Message:
        message = await with_retry(
            lambda: self.bot.send_photo(
                chat_id=chat_id, photo=_photo_source(file_id, image), caption=caption,
                reply_markup=markup, reply_parameters=reply_parameters(reply_to),
            ),
            idempotent=False,
        )
        if image is not None and message.photo:
            self._photo_ids.remember(str(image), message.photo[-1].file_id)
        self._kinds.remember((chat_id, message.message_id), "caption")
        return message

    # --- edits in place -----------------------------------------------------------
    async def set_buttons(
        self, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
    ) -> None:
        try:
            await with_retry(lambda: self.bot.edit_message_reply_markup(
                chat_id=chat_id, message_id=message_id, reply_markup=markup))
        except TelegramBadRequest as exc:
            if not (not_modified(exc) or message_gone(exc)):
                raise

    async def edit(self, ctx: ChatContext, out: Edit) -> None:
        chat_id, message_id = int(ctx.chat_id), int(out.message_id)
        screen = out.screen
        markup = keyboard(screen)
        if out.buttons_only:
            await self.set_buttons(chat_id, message_id, markup)
            return
        if out.new_media and screen.image is not None:
            try:
                await self._edit_photo(chat_id, message_id, screen.image, screen.text, markup)
                return
            except TelegramBadRequest as exc:
                if not_modified(exc):
                    return
                if not (wrong_kind(exc) or message_gone(exc)):
                    raise
            # A text message cannot become a photo (and a deleted one cannot change): send anew.
            await self.send(ctx, screen, reply_to=None, session_id=session_of(screen))
            return
        await self._edit_words(ctx, chat_id, message_id, screen, markup)

    async def _edit_photo(
        self, chat_id: int, message_id: int, image: Path, text: str,
        markup: InlineKeyboardMarkup | None,
    ) -> None:
        caption = clip(text, MAX_CAPTION)
        known = self._photo_ids.get(str(image))
        if known is not None:
            try:
                await self._media_edit(chat_id, message_id, known, caption, markup)
                return
            except TelegramBadRequest as exc:
                if not bad_file_id(exc):
                    raise
        edited = await self._media_edit(chat_id, message_id, None, caption, markup, image)
        if isinstance(edited, Message) and edited.photo:
            self._photo_ids.remember(str(image), edited.photo[-1].file_id)

    async def _media_edit(
        self, chat_id: int, message_id: int, file_id: str | None, caption: str,
        markup: InlineKeyboardMarkup | None, image: Path | None = None,
    ) -> Message | bool:
        result = await with_retry(
            lambda: self.bot.edit_message_media(
                chat_id=chat_id, message_id=message_id, reply_markup=markup,
                media=InputMediaPhoto(media=_photo_source(file_id, image), caption=caption),
            )
        )
        self._kinds.remember((chat_id, message_id), "caption")
        return result

    async def _edit_words(
        self, ctx: ChatContext, chat_id: int, message_id: int, screen: Screen,
        markup: InlineKeyboardMarkup | None,
    ) -> None:
        first = self._kinds.get((chat_id, message_id)) or ("caption" if screen.image else "text")
        for kind in (first, "text" if first == "caption" else "caption"):
            try:
                if kind == "caption":
                    await with_retry(lambda: self.bot.edit_message_caption(
                        chat_id=chat_id, message_id=message_id,
                        caption=clip(screen.text, MAX_CAPTION), reply_markup=markup,
                    ))
                else:
                    await with_retry(lambda: self.bot.edit_message_text(
                        chat_id=chat_id, message_id=message_id,
                        text=clip(screen.text, MAX_TEXT), reply_markup=markup,
                    ))
            except TelegramBadRequest as exc:
                if wrong_kind(exc):
                    continue
                if message_gone(exc):
                    await self.send(ctx, screen, reply_to=None, session_id=session_of(screen))
                    return
                if not not_modified(exc):
                    raise
            self._kinds.remember((chat_id, message_id), kind)
            return

    # --- asking and media -------------------------------------------------------------
    async def ask(self, ctx: ChatContext, out: AskText, lang: str) -> None:
        """Telegram has no forms: show the question; the next text answers it."""
        screen = out.screen
        if ctx.chat_kind == "group":
            hint = t(lang, "telegram.reply_with_text")
            screen = dataclasses.replace(screen, text=f"{screen.text}\n\n{hint}")
        if out.message_id is not None:
            await self.edit(ctx, Edit(screen, out.message_id))
        else:
            await self.send(ctx, screen, reply_to=ctx.message_id, session_id=out.session_id)

    async def send_media(self, ctx: ChatContext, out: SendMedia) -> Message:
        text = clip(out.screen.text, MAX_CAPTION - 80)
        if ctx.chat_kind == "group":
            kwargs = mentioned(text, int(ctx.user_id), ctx.display_name or ctx.username or "")
        else:
            kwargs = {"caption": text}
        return await self.sender.send(
            int(ctx.chat_id), out.media, text=kwargs, markup=keyboard(out.screen),
            reply_to=out.reply_to,
        )

    # --- the chat's feed -------------------------------------------------------------------
    async def send_feed(self, ctx: ChatContext, out: SendFeed) -> None:
        """A feed page: its header (◀ ▶), then each clip as a video by file id (uploaded
        again from the kept file if Telegram no longer has it). Turning the page sends
        the new page below and takes ◀ ▶ off the old header."""
        chat_id = int(ctx.chat_id)
        if out.message_id is not None:
            with contextlib.suppress(TelegramBadRequest):
                await with_retry(lambda: self.bot.edit_message_reply_markup(
                    chat_id=chat_id, message_id=int(out.message_id or 0), reply_markup=None))
        reply_to = ctx.message_id if out.message_id is None else None
        await self.send(ctx, out.screen, reply_to=reply_to)
        for item in out.clips:
            await self._send_clip(chat_id, item)

    async def _send_clip(self, chat_id: int, item: FeedClip) -> Message:
        caption = clip(item.caption, MAX_CAPTION)
        markup = keyboard(Screen(item.caption, item.buttons))
        if item.file_id is not None:
            try:
                return await self._video(chat_id, item.file_id, caption, markup)
            except TelegramBadRequest as exc:
                if not bad_file_id(exc) or item.path is None:
                    raise
        if item.path is not None:
            return await self._video(chat_id, FSInputFile(item.path), caption, markup)
        # The clip is no longer kept: the post is still listed, with its buttons.
        return await with_retry(
            lambda: self.bot.send_message(chat_id=chat_id, text=clip(item.caption, MAX_TEXT),
                                          reply_markup=markup),
            idempotent=False,
        )

    async def _video(self, chat_id: int, video: str | FSInputFile, caption: str,
                     markup: InlineKeyboardMarkup | None) -> Message:
        message = await with_retry(
            lambda: self.bot.send_video(chat_id=chat_id, video=video, caption=caption,
                                        reply_markup=markup, supports_streaming=True),
            idempotent=False,
        )
        self._kinds.remember((chat_id, message.message_id), "caption")
        return message

    # --- helpers ------------------------------------------------------------------------
    @staticmethod
    def _hint(ctx: ChatContext, reply: Reply, session_id: str | None) -> str:
        key = _GROUP_HINTS.get(reply.awaiting)
        if ctx.chat_kind != "group" or session_id is None or key is None:
            return ""
        return t(reply.lang, key)


class Outlet:
    """One update's answer: rendered in its chat; a press is also answered within its deadline,
    with the core's alerts if they came in time (else empty, and the alerts go to the chat)."""

    def __init__(self, renderer: Renderer, ctx: ChatContext, query: CallbackQuery | None, *,
                 answered: bool = False) -> None:
        self.renderer = renderer
        self.ctx = ctx
        self.query = query
        self.answered = answered  # the press was answered before it was handled (Redis was down)
        self.deadline = Deadline(ANSWER_WITHIN, self._answer_empty)

    async def acknowledge(self) -> None:
        if self.query is not None and not self.answered:
            self.deadline.start()

    async def _answer_empty(self) -> None:
        await answer(self.query)

    async def is_chat_admin(self) -> bool:
        """A group's administrator or creator (asked only when a non-owner deletes a post)."""
        if self.ctx.chat_kind != "group":
            return False
        try:
            member = await self.renderer.bot.get_chat_member(
                chat_id=int(self.ctx.chat_id), user_id=int(self.ctx.user_id)
            )
        except TelegramAPIError:
            return False
        return member.status in ("administrator", "creator")

    async def render(self, reply: Reply) -> None:
        late = await self.deadline.settle() or self.answered
        if self.query is not None and not late:
            alerts = [alert.text for alert in reply.alerts]
            await answer(self.query, "\n".join(alerts) or None, alert=bool(alerts))
        pressed = self.query.message if self.query is not None else None
        await self.renderer.render(reply, self.ctx, skip_alerts=self.query is not None and not late,
                                   pressed=pressed if isinstance(pressed, Message) else None)


async def answer(query: CallbackQuery | None, text: str | None = None, *, alert: bool = False) -> None:
    """Answer a press (once); a press too old to answer (pressed while we restarted) is let go."""
    if query is None:
        return
    with contextlib.suppress(TelegramAPIError):
        await query.answer(clip(text, MAX_ALERT) if text else None, show_alert=alert)


def _photo_source(file_id: str | None, image: Path | None) -> str | FSInputFile:
    """A known file id, else a fresh upload of `image` (a stream is read once per attempt)."""
    if file_id is not None:
        return file_id
    assert image is not None
    return FSInputFile(image)
