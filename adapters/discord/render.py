"""Rendering a core `Reply` on Discord: in answer to an interaction, or to a plain message.

Screens become a message: the text as content, the screen's image as an
attached file, buttons and the select menu as a persistent view. Studio
messages are bound to their session so later presses edit them in place.
Both repliers are the Desk's `Outlet` for one update; where the studio waits
for input, its screens get Discord's hint and, for a file, the 📎 Upload button.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.components import build_view, offer_upload, prompt_modal, updated_view
from adapters.discord.feed import FeedMessage, feed_message
from core.actions import CustomPrompt
from core.desk import Alert, AnswerTooLate, AskText, Awaiting, Edit, Out, Reply, Send, SendMedia
from core.desk.deadline import Deadline
from core.i18n import t
from core.media.fit import fit_video
from core.screens import Button, Screen
from core.studio.replies import SendFeed

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

log = logging.getLogger(__name__)

# How long a press that may open a form waits for the core before it must defer instead
# (a form has to be the first answer, and every answer must come within 3 s).
FORM_DECISION_SECONDS = 2.0
# What the studio waits for, said the Discord way (typed text only reaches the bot with a mention).
HINTS = {Awaiting.TIME: "discord.hint.time", Awaiting.CLIP: "discord.hint.clip",
         Awaiting.IMAGE: "discord.hint.image"}
MAX_CONTENT = 2000
NO_MENTIONS = discord.AllowedMentions.none()
UPLOAD_TOO_LARGE = 40005
UNKNOWN_INTERACTION = 10062  # answered after Discord's 3 s (or the interaction is not ours)
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # Discord's limit for unboosted servers and DMs


def content_of(text: str) -> str:
    return text if len(text) <= MAX_CONTENT else text[: MAX_CONTENT - 1] + "…"


def image_file(path: Path) -> discord.File:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name) or "image.jpg"
    return discord.File(path, filename=name)


def send_kwargs(screen: Screen) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"content": content_of(screen.text), "allowed_mentions": NO_MENTIONS}
    view = build_view(screen)
    if view is not None:
        kwargs["view"] = view
    if screen.image is not None and screen.image.exists():
        kwargs["file"] = image_file(screen.image)
    return kwargs


def edit_kwargs(screen: Screen, new_media: bool, buttons_only: bool = False) -> dict[str, Any]:
    if buttons_only:
        return {"view": build_view(screen)}
    kwargs: dict[str, Any] = {"content": content_of(screen.text), "view": build_view(screen)}
    if new_media:
        image = screen.image if screen.image is not None and screen.image.exists() else None
        kwargs["attachments"] = [image_file(image)] if image is not None else []
    return kwargs


def for_discord(reply: Reply, group: bool) -> Reply:
    """The reply's studio screens with the hint for what the studio awaits (a time only
    in servers, where typing needs a mention) and 📎 Upload when it awaits a file."""
    key = HINTS.get(reply.awaiting)
    if key is None or (reply.awaiting == Awaiting.TIME and not group):
        return reply
    note, outs = t(reply.lang, key), list[Out]()
    for out in reply.outs:
        if isinstance(out, Edit) or isinstance(out, Send) and out.session_id is not None:
            screen = replace(out.screen, text=f"{out.screen.text}\n{note}")
            out = replace(out, screen=offer_upload(screen, reply.awaiting, t(reply.lang, "discord.upload")))
        outs.append(out)
    return replace(reply, outs=outs)


def answered_too_late(exc: BaseException) -> bool:
    """Discord refused an interaction's answer as too late: 404, 10062 Unknown interaction."""
    return isinstance(exc, discord.NotFound) and exc.code == UNKNOWN_INTERACTION


@contextlib.contextmanager
def in_time(interaction: discord.Interaction) -> Iterator[None]:
    """An answer Discord refused as too late, as the Desk's `AnswerTooLate` (one warning
    line, not an error with a traceback): nothing went wrong that can be fixed here."""
    try:
        yield
    except discord.NotFound as exc:
        if not answered_too_late(exc):
            raise
        raise AnswerTooLate(
            f"{interaction.type.name} interaction {interaction.id} (10062 Unknown interaction)") from None


def open_form_button(lang: str, session_id: str) -> Button:
    return Button(t(lang, "discord.open_form"), CustomPrompt(session_id), "primary")


class InteractionReplier:
    """Renders replies to one interaction, respecting what was already answered.

    `defer`: "thinking" / "ephemeral" (a command: a loading message, which the first
    message then replaces), "update" (a press: an `Edit` of the pressed message goes
    through the interaction), "form" (a press that may open a form, which must be the
    first answer: deferred only if the core is slow).
    """

    def __init__(self, bot: LokizBot, interaction: discord.Interaction, defer: str, *,
                 private: bool = False) -> None:
        self.bot = bot
        self.interaction = interaction
        self.defer = defer
        self.private = private  # only the caller sees the answers (e.g. /post in any chat)
        self.lang: str = bot.default_language  # the caller's, once a reply says it
        self.thinking = False  # a "thinking…" message is waiting for its first follow-up
        self.thinking_ephemeral = False
        self.deadline = Deadline(FORM_DECISION_SECONDS, self.defer_update)

    async def acknowledge(self) -> None:
        with in_time(self.interaction):
            if self.defer in ("thinking", "ephemeral"):
                await self.defer_thinking(ephemeral=self.defer == "ephemeral")
            elif self.defer == "update":
                await self.defer_update()
            elif self.defer == "form":
                self.deadline.start()

    @property
    def responded(self) -> bool:
        return self.interaction.response.is_done()

    @property
    def pressed_message_id(self) -> str | None:
        message = self.interaction.message
        return str(message.id) if message is not None else None

    async def defer_thinking(self, *, ephemeral: bool) -> None:
        if not self.responded:
            await self.interaction.response.defer(thinking=True, ephemeral=ephemeral)
            self.thinking, self.thinking_ephemeral = True, ephemeral

    async def defer_update(self) -> None:
        if not self.responded:
            await self.interaction.response.defer()

    async def render(self, reply: Reply) -> None:
        with in_time(self.interaction):
            await self._render(reply)

    async def _render(self, reply: Reply) -> None:
        await self.deadline.settle()
        self.lang = reply.lang or self.lang
        for out in for_discord(reply, self.interaction.guild_id is not None).outs:
            if self.private and isinstance(out, Send | SendFeed):
                out = replace(out, screen=replace(out.screen, ephemeral=True))
            if isinstance(out, Send):
                await self.send(out.screen, out.session_id)
            elif isinstance(out, Edit):
                await self.edit(out.screen, out.message_id, out.new_media, out.buttons_only)
            elif isinstance(out, Alert):
                await self.alert(out.text)
            elif isinstance(out, AskText):
                await self.ask(out)
            elif isinstance(out, SendMedia):
                await self.send_media(out)
            elif isinstance(out, SendFeed):
                await self.send_feed(out)

    async def is_chat_admin(self) -> bool:
        """An admin of this chat: a server member with Manage Messages in the channel
        (Discord resolves it with roles and overwrites). A DM has none."""
        return self.interaction.guild_id is not None and self.interaction.permissions.manage_messages

    async def finish(self) -> None:
        """Nothing more to say: never leave a "thinking…" message behind."""
        if self.thinking:
            await self._drop_thinking()

    async def send(self, screen: Screen, session_id: str | None = None) -> discord.Message:
        if not self.responded:
            await self.defer_thinking(ephemeral=screen.ephemeral)
        if self.thinking and self.thinking_ephemeral != screen.ephemeral:
            await self._drop_thinking()
        message = await self.interaction.followup.send(
            **send_kwargs(screen), ephemeral=screen.ephemeral, wait=True
        )
        self.thinking = False
        if session_id is not None:
            await self.bot.desk.bind_message(session_id, str(message.id))
        return message

    async def edit(self, screen: Screen, message_id: str, new_media: bool,
                   buttons_only: bool = False) -> None:
        kwargs = edit_kwargs(screen, new_media, buttons_only)
        pressed = self.pressed_message_id
        if pressed == message_id and not self.thinking:
            if buttons_only:  # a post's 👍 among other buttons changes alone
                kwargs["view"] = updated_view(self.interaction.message, screen) or kwargs["view"]
            await self._edit_pressed(kwargs)
            return
        try:
            channel = self.bot.get_partial_messageable(int(self.interaction.channel_id or 0))
            await channel.get_partial_message(int(message_id)).edit(**kwargs)
        except (discord.Forbidden, discord.NotFound):
            if buttons_only:  # e.g. a deleted post's result that a moderator removed: nothing to show
                log.info("discord: buttons of message %s not updated (gone or not ours)", message_id)
                return
            # Not a message the bot can edit by itself (e.g. an interaction reply): show it here.
            if pressed is not None and not self.thinking:
                await self._edit_pressed(edit_kwargs(screen, True))
            else:
                await self.send(replace(screen, ephemeral=False))

    async def _edit_pressed(self, kwargs: dict[str, Any]) -> None:
        if not self.responded:
            await self.interaction.response.edit_message(**kwargs)
        else:
            await self.interaction.edit_original_response(**kwargs)

    async def alert(self, text: str) -> None:
        if not self.responded:
            await self.interaction.response.send_message(content_of(text), ephemeral=True)
            return
        if self.thinking and not self.thinking_ephemeral:
            await self._drop_thinking()
        await self.interaction.followup.send(content_of(text), ephemeral=True)
        self.thinking = False

    async def ask(self, ask: AskText) -> None:
        kinds = (discord.InteractionType.component, discord.InteractionType.application_command)
        if not self.responded and self.interaction.type in kinds:
            await self.interaction.response.send_modal(prompt_modal(ask))
            return
        # A form must be the first answer; too late for it now: offer a button that opens it.
        button = open_form_button(self.lang, ask.session_id)
        text = f"{ask.screen.text}\n{t(self.lang, 'discord.form_hint')}"
        await self.send(Screen(text, ((button,),), ephemeral=True))

    async def send_media(self, out: SendMedia) -> None:
        path = out.media.path
        limit = self.interaction.filesize_limit
        if out.media.kind == "video" and path.stat().st_size > limit:
            path = (await fit_video(path, limit, path.with_suffix(f".fit{limit}.mp4"))).path
        if not self.responded:
            await self.defer_thinking(ephemeral=False)
        if self.thinking and self.thinking_ephemeral:
            await self._drop_thinking()
        kwargs = send_kwargs(out.screen)
        kwargs["file"] = discord.File(path, filename=f"lokiz{path.suffix}")
        await self.interaction.followup.send(**kwargs, wait=True)
        self.thinking = False

    async def send_feed(self, out: SendFeed) -> None:
        """A feed page: a new message, or ◀ ▶ turning the page of the one pressed."""
        limit = self.interaction.filesize_limit
        for attempt in range(2):
            async with feed_message(self.bot, out, self.lang, limit) as page:
                try:
                    await self._show_feed(out, page)
                    return
                except discord.HTTPException as exc:
                    if attempt or not too_large(exc):
                        raise
                    # The channel takes less than it said: once more with smaller clips.
                    log.warning("feed page refused as too large (%s); fitting smaller", exc)
                    limit = limit * 3 // 4

    async def _show_feed(self, out: SendFeed, page: FeedMessage) -> None:
        if out.message_id is not None:
            if self.pressed_message_id == out.message_id and not self.thinking:
                await self._edit_pressed(page.edit_kwargs())
                return
            try:
                channel = self.bot.get_partial_messageable(int(self.interaction.channel_id or 0))
                await channel.get_partial_message(int(out.message_id)).edit(**page.edit_kwargs())
                return
            except (discord.Forbidden, discord.NotFound):
                pass  # not a message the bot can edit by itself: show the page anew
        if not self.responded:
            await self.defer_thinking(ephemeral=page.ephemeral)
        if self.thinking and self.thinking_ephemeral != page.ephemeral:
            await self._drop_thinking()
        await self.interaction.followup.send(**page.send_kwargs(), ephemeral=page.ephemeral, wait=True)
        self.thinking = False

    async def _drop_thinking(self) -> None:
        self.thinking = False
        with contextlib.suppress(discord.NotFound):
            await self.interaction.delete_original_response()


def too_large(exc: discord.HTTPException) -> bool:
    """Discord refused an upload for its size (413, 40005 Request entity too large)."""
    return exc.status == 413 or exc.code == UPLOAD_TOO_LARGE


class MessageReplier:
    """Renders replies to a plain message (a DM, or a mention): channel messages, as replies."""

    def __init__(self, bot: LokizBot, message: discord.Message) -> None:
        self.bot = bot
        self.message = message
        self.lang: str = bot.default_language

    async def acknowledge(self) -> None:
        """Nothing to acknowledge: a message has no answer deadline."""

    async def is_chat_admin(self) -> bool:
        """A server member with Manage Messages in this channel (from the cached roles)."""
        author, channel = self.message.author, self.message.channel
        if self.message.guild is None or not isinstance(author, discord.Member):
            return False
        return bool(channel.permissions_for(author).manage_messages)

    async def render(self, reply: Reply) -> None:
        self.lang = reply.lang or self.lang
        for out in for_discord(reply, self.message.guild is not None).outs:
            if isinstance(out, Send):
                await self.send(out.screen, out.session_id)
            elif isinstance(out, Edit):
                try:
                    partial = self.message.channel.get_partial_message(int(out.message_id))  # type: ignore[union-attr]
                    await partial.edit(**edit_kwargs(out.screen, out.new_media, out.buttons_only))
                except (discord.Forbidden, discord.NotFound):
                    if not out.buttons_only:  # new buttons alone, on a message that is gone: dropped
                        await self.send(out.screen, None)
            elif isinstance(out, Alert):
                await self.send(Screen(out.text), None)
            elif isinstance(out, AskText):
                button = open_form_button(reply.lang, out.session_id)
                await self.send(Screen(out.screen.text, ((button,),)), None)
            elif isinstance(out, SendMedia):
                kwargs = send_kwargs(out.screen)
                kwargs["file"] = discord.File(out.media.path, filename=f"lokiz{out.media.path.suffix}")
                await self.message.channel.send(**kwargs, reference=self._reference())
            elif isinstance(out, SendFeed):
                await self.send_feed(out)

    async def send_feed(self, out: SendFeed) -> None:
        guild = self.message.guild
        limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        async with feed_message(self.bot, out, self.lang, limit) as page:
            if out.message_id is not None:
                with contextlib.suppress(discord.Forbidden, discord.NotFound):
                    partial = self.message.channel.get_partial_message(int(out.message_id))  # type: ignore[union-attr]
                    await partial.edit(**page.edit_kwargs())
                    return
            await self.message.channel.send(**page.send_kwargs(), reference=self._reference())

    async def send(self, screen: Screen, session_id: str | None) -> discord.Message:
        sent = await self.message.channel.send(**send_kwargs(screen), reference=self._reference())
        if session_id is not None:
            await self.bot.desk.bind_message(session_id, str(sent.id))
        return sent

    def _reference(self) -> discord.MessageReference:
        return self.message.to_reference(fail_if_not_exists=False)
