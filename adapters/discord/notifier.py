"""The engine's voice on Discord: status messages and results, as channel messages.

Interaction tokens die after 15 minutes and jobs may outlive them (or the
process), so everything the engine says goes to the job's channel with the bot
token: a status message replying to the request, edited as the job moves, and
the result with its buttons, mentioning its owner in servers.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from adapters.discord.components import build_view
from adapters.discord.render import DEFAULT_UPLOAD_LIMIT, content_of
from core.jobs import Job
from core.notify import MaybeDelivered, NotDelivered, OutputMedia, Receipt, RecipientGone
from core.screens import Screen

if TYPE_CHECKING:
    from adapters.discord.app import LokizBot

log = logging.getLogger(__name__)

READY_WAIT_SECONDS = 60.0
UNKNOWN_MESSAGE = 10008
UPLOAD_TOO_LARGE = 40005


def result_nonce(job: Job) -> str:
    """The same nonce for every send of a job's result (at most 25 characters): with
    enforce_nonce Discord returns the message already posted instead of a second one."""
    return f"lokiz-{job.id}"[:25]


class DiscordNotifier:
    platform = "discord"
    drops_duplicate_sends = True  # result sends carry the job's nonce

    def __init__(self, bot: LokizBot) -> None:
        self.bot = bot
        # What Discord said the upload limit is in a channel (Interaction.filesize_limit):
        # it knows about boosts; the guild's premium tier is the fallback.
        self._limits: dict[str, int] = {}
        # Whether a channel this process does not cache is in a server (looked up once).
        self._in_server: dict[str, bool] = {}

    # --- upload limit --------------------------------------------------------------
    def learn_limit(self, channel_id: str, limit: int | None) -> None:
        if limit:
            self._limits[channel_id] = int(limit)

    def upload_limit(self, job: Job) -> int:
        limit = self._limits.get(job.chat_id)
        if limit is None:
            channel = self.bot.get_channel(int(job.chat_id))
            guild = getattr(channel, "guild", None)
            limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        return max(64 * 1024, limit - limit // 50)  # a small margin under the hard limit

    # --- status ----------------------------------------------------------------------
    async def show_status(self, job: Job, screen: Screen) -> str | None:
        await self._ready()
        channel = self.bot.get_partial_messageable(int(job.chat_id))
        view = build_view(screen)
        if job.status_message_id:
            try:
                await channel.get_partial_message(int(job.status_message_id)).edit(
                    content=content_of(screen.text), view=view
                )
                return job.status_message_id
            except discord.NotFound as exc:
                if exc.code != UNKNOWN_MESSAGE:
                    raise RecipientGone(str(exc)) from exc
                log.info("job %s: status message is gone; sending a new one", job.id)
            except discord.Forbidden as exc:
                raise RecipientGone(str(exc)) from exc
        message = await self._send(channel, job, view, content=content_of(screen.text),
                                   allowed_mentions=discord.AllowedMentions.none())
        return str(message.id)

    async def _send(self, channel: Any, job: Job, view: Any, **kwargs: Any) -> discord.Message:
        """A channel message for `job`, replying to its request; a lost channel is RecipientGone."""
        if view is not None:
            kwargs["view"] = view
        reference = self._reference(job)
        if reference is not None:
            kwargs["reference"] = reference
        try:
            return await channel.send(**kwargs)  # type: ignore[no-any-return]
        except (discord.Forbidden, discord.NotFound) as exc:
            raise RecipientGone(str(exc)) from exc

    # --- result --------------------------------------------------------------------------
    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        try:
            await self._ready()
        except Exception as exc:  # nothing was sent yet
            raise NotDelivered(str(exc)) from exc
        channel = self.bot.get_partial_messageable(int(job.chat_id))
        text = screen.text
        mentions = discord.AllowedMentions.none()
        if job.owner_id and job.owner_id.isdigit() and await self._server_channel(job.chat_id):
            text = f"<@{job.owner_id}> {text}"
            mentions = discord.AllowedMentions(users=[discord.Object(int(job.owner_id))],
                                               everyone=False, roles=False, replied_user=False)
        suffix = media.path.suffix or (".mp4" if media.kind == "video" else ".wav")
        try:
            message = await self._send(
                channel, job, build_view(screen), content=content_of(text),
                file=discord.File(media.path, filename=f"lokiz-{job.id}{suffix}"),
                allowed_mentions=mentions, nonce=result_nonce(job),
            )
        except discord.DiscordServerError as exc:
            raise MaybeDelivered(str(exc)) from exc  # a 5xx after the upload
        except discord.HTTPException as exc:
            if exc.status == 413 or exc.code == UPLOAD_TOO_LARGE:
                # The channel takes less than we thought: fit harder on the engine's retry.
                size = media.path.stat().st_size
                self._limits[job.chat_id] = int(min(self.upload_limit(job), size) * 0.75)
                log.warning("job %s: %d bytes refused as too large; retrying smaller", job.id, size)
            raise NotDelivered(str(exc)) from exc  # a 4xx: Discord refused it
        except aiohttp.ClientConnectorError as exc:
            raise NotDelivered(str(exc)) from exc  # no connection: nothing was sent
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise MaybeDelivered(f"{type(exc).__name__}: {exc}") from exc  # sent, answer lost
        file_id = message.attachments[0].url if message.attachments else None
        log.info("job %s delivered to discord channel %s as message %s", job.id, job.chat_id, message.id)
        return Receipt(str(message.id), file_id)

    # --- buttons of a message in any channel -------------------------------------------
    async def edit_buttons(self, chat_id: str, message_id: str, screen: Screen) -> None:
        await self._ready()
        channel = self.bot.get_partial_messageable(int(chat_id))
        try:
            await channel.get_partial_message(int(message_id)).edit(view=build_view(screen))
        except discord.NotFound:  # removed by a moderator: nothing left to update
            log.info("discord: buttons of message %s in %s not updated (gone)", message_id, chat_id)

    # --- helpers -----------------------------------------------------------------------
    async def _server_channel(self, chat_id: str) -> bool:
        """Whether the job's channel is in a server, where the result mentions its owner. The
        cache knows the channels of this process's shards; a channel of another shard's guild
        (any worker delivers) or any channel in a worker with no gateway is looked up once
        over REST. A failed look-up sends without the mention rather than not at all."""
        cached = self.bot.get_channel(int(chat_id))
        if cached is not None:
            return getattr(cached, "guild", None) is not None
        known = self._in_server.get(chat_id)
        if known is None:
            try:
                fetched = await self.bot.fetch_channel(int(chat_id))
            except (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("discord: channel %s not looked up (%s); no mention", chat_id, exc)
                return False
            known = self._in_server[chat_id] = getattr(fetched, "guild", None) is not None
        return known

    async def _ready(self) -> None:
        """Wait until the client is connected (after a restart, recovery starts before it is)."""
        try:
            await asyncio.wait_for(self.bot.connected.wait(), READY_WAIT_SECONDS)
        except TimeoutError:
            raise ConnectionError("not connected to Discord yet") from None

    @staticmethod
    def _reference(job: Job) -> discord.MessageReference | None:
        """Reply to the request (for a slash command, its studio message: settled at submit)."""
        target = job.reply_to_message_id
        if not (target and re.fullmatch(r"\d{1,20}", target)):
            return None
        return discord.MessageReference(message_id=int(target), channel_id=int(job.chat_id),
                                        fail_if_not_exists=False)
