"""A Discord server with LOKIZ in it, for end-to-end tests.

The real bot runs as `python -m bot` in a subprocess, configured only through
the environment, against a fake Discord and a fake Replicate that live in the
test process. Real SQLite, real ffmpeg media.

    async with discord_world(tmp) as world:
        ask = await world.discord.slash(ALICE, CHANNEL, "capture", {"at": "2.5"},
                                        attachments={"video": world.media.video})
        studio = await world.studio_message(ask)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.media.probe import VideoInfo, probe
from tests.fakes.discord import FLAG_EPHEMERAL, FakeDiscord, FakeInteraction
from tests.fakes.replicate import FakeReplicate
from tests.media_factory import make_av_video, make_image, make_noisy_video
from tests.welcome import WELCOME, only_welcome

REPO = Path(__file__).resolve().parent.parent

GUILD = 810_000_000_000_000_001
CHANNEL = 810_000_000_000_000_010
ALICE = 810_000_000_000_000_101
BOB = 810_000_000_000_000_102
MINJI = 810_000_000_000_000_103  # a Korean-locale member
CAROL = 810_000_000_000_000_104  # the admin
DAVE = 810_000_000_000_000_105
ERIN = 810_000_000_000_000_106
GINA = 810_000_000_000_000_108  # first meets the bot by remixing someone's clip
STARTER = 100
TEMPLATE_MODEL = "google/veo-3-fast"
ANIMATE_MODEL = "wan-video/wan-2.2-animate-animation"
REPLACE_MODEL = "wan-video/wan-2.2-animate-replace"

JSON = dict[str, Any]


@dataclass(frozen=True)
class Media:
    video: Path  # what users share: 320×240, 5 s, with sound
    photo: Path  # a user's picture
    result: Path  # what the fake models return
    big_result: Path  # a model result larger than a small upload limit




def make_media(work: Path) -> Media:
    work.mkdir(parents=True, exist_ok=True)
    return Media(
        video=make_av_video(work / "dance.mp4", seconds=5.0),
        photo=make_image(work / "me.jpg"),
        result=make_av_video(work / "result.mp4", seconds=2.0),
        big_result=make_noisy_video(work / "big-result.mp4"),
    )


class BotProcess:
    """`python -m bot`, as an operator starts it."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "bot.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=self.workdir, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class World:
    def __init__(self, discord: FakeDiscord, replicate: FakeReplicate, media: Media, bot: BotProcess,
                 work: Path) -> None:
        self.discord = discord
        self.replicate = replicate
        self.media = media
        self.bot = bot
        self.work = work

    # --- the bot's life ---------------------------------------------------------------
    async def start_bot(self) -> None:
        sessions = len(self.discord.identify_payloads)
        self.bot.start()
        try:
            await self.discord.wait_until(
                lambda: len(self.discord.identify_payloads) > sessions and self.discord.connected
                or not self.bot.alive,
                timeout=40,
            )
            assert self.bot.alive, f"the bot exited:\n{self.bot.log()[-3000:]}"
            await self.discord.wait_until(lambda: "discord: connected" in self.bot.log(), timeout=20)
        except TimeoutError:
            raise AssertionError(f"the bot did not connect:\n{self.bot.log()[-3000:]}") from None

    async def crash_bot(self) -> None:
        """The process dies without a word (SIGKILL), as in a power cut or an OOM kill."""
        self.bot.stop(signal.SIGKILL)
        await self.discord.wait_until(lambda: not self.discord.connected, timeout=10)

    async def restart_bot(self) -> None:
        assert self.bot.stop() == 0, self.bot.log()[-3000:]
        await self.discord.wait_until(lambda: not self.discord.connected, timeout=10)
        await self.start_bot()

    # --- reading what the bot did ---------------------------------------------------------
    def _answers(self, interaction: FakeInteraction) -> list[int]:
        """Follow-up messages, a first contact's welcome on its own (which comes first, once) aside."""
        return [r.message_id for r in self.discord.interaction_responses(interaction)
                if r.kind == "followup" and r.message_id is not None
                and not only_welcome(self._current(r.message_id)["content"])]

    async def answer(self, interaction: FakeInteraction, timeout: float = 20.0) -> JSON:
        """The message the bot's first follow-up made (a deferred command's answer)."""
        ids = await self.discord.wait_until(lambda: self._answers(interaction), timeout=timeout)
        return self.discord.message(ids[0])

    async def welcomed(self, interaction: FakeInteraction, timeout: float = 20.0) -> JSON:
        """The first-contact welcome the bot sent in answer to this interaction."""
        def welcome() -> JSON | None:
            for r in self.discord.interaction_responses(interaction):
                if r.kind == "followup" and r.message_id is not None:
                    message = self._current(r.message_id)
                    if message["content"].startswith(WELCOME):
                        return message
            return None
        return await self.discord.wait_until(welcome, timeout=timeout)

    async def replies(self, interaction: FakeInteraction, count: int = 1,
                      timeout: float = 20.0) -> list[JSON]:
        """The first `count` follow-up messages of an interaction (current state)."""
        def followups() -> list[int] | None:
            ids = [r.message_id for r in self.discord.interaction_responses(interaction)
                   if r.kind == "followup" and r.message_id is not None]
            return ids if len(ids) >= count else None
        ids = await self.discord.wait_until(followups, timeout=timeout)
        return [self._current(message_id) for message_id in ids]

    def _current(self, message_id: int) -> JSON:
        if message_id in self.discord.messages:
            return self.discord.message(message_id)
        return self.discord.deleted_messages[message_id]

    async def handled(self, interaction: FakeInteraction, timeout: float = 20.0) -> None:
        """The press was acknowledged and its answer has landed (an edit or a follow-up)."""
        await self.discord.wait_until(
            lambda: any(r.kind != "callback" or r.callback_type in (4, 7, 9)
                        for r in self.discord.interaction_responses(interaction)),
            timeout=timeout,
        )

    async def edited_to(self, message_id: int | str, contains: str, timeout: float = 20.0) -> JSON:
        return await self.discord.wait_until(
            lambda: (m := self.discord.message(message_id))["content"].find(contains) >= 0 and m,
            timeout=timeout,
        )

    async def channel_message(self, predicate: Callable[[JSON], bool], timeout: float = 30.0,
                              channel: int = CHANNEL) -> JSON:
        return await self.discord.wait_for_message(channel, predicate, timeout=timeout)

    async def ephemeral_text(self, interaction: FakeInteraction, timeout: float = 20.0) -> str:
        """The text of the first ephemeral thing the bot said to this interaction."""
        def found() -> str | None:
            for response in self.discord.interaction_responses(interaction):
                if response.kind in ("callback", "followup") and response.ephemeral \
                        and response.content and not only_welcome(response.content):
                    return response.content
                if response.kind == "followup" and response.message_id is not None:
                    message = self.discord.messages.get(response.message_id)
                    if message is not None and message["flags"] & FLAG_EPHEMERAL \
                            and not only_welcome(message["content"]):
                        return str(message["content"])
            return None
        return str(await self.discord.wait_until(found, timeout=timeout))

    async def clip_of(self, message: JSON) -> tuple[Path, VideoInfo, int]:
        """The delivered attachment saved to disk, probed as the user's player would see it."""
        attachment = message["attachments"][0]
        data = self.discord.attachment_bytes(attachment)
        path = self.work / f"received-{message['id']}-{attachment['filename']}"
        path.write_bytes(data)
        return path, await probe(path), len(data)

    def select_of(self, message: JSON) -> JSON:
        return next(c for row in message["components"] for c in row["components"] if c["type"] == 3)

    def option(self, message: JSON, label: str) -> str:
        return next(o["value"] for o in self.select_of(message)["options"] if o["label"] == label)

    def buttons(self, message: JSON) -> list[str]:
        return [c.get("label", "") for row in message["components"] for c in row["components"]
                if c["type"] == 2]

    def assert_every_interaction_answered_in_time(self) -> None:
        late = [c for c in self.discord.find_calls("POST", r"/interactions/\d+/[^/]+/callback")
                if c.status >= 400]
        assert late == [], [(c.path, c.status, c.json) for c in late]
        unanswered = [i.id for i in self.discord.interactions.values()
                      if not i.acknowledged and i.type != 4]
        assert unanswered == []
        assert self.discord.internal_errors == []


def bot_env(discord: FakeDiscord, replicate: FakeReplicate, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_", "PYTEST"))}
    env.update(
        PYTHONPATH=str(REPO),
        DISCORD_BOT_TOKEN=discord.token,
        DISCORD_API_BASE=discord.base_url,
        DISCORD_GATEWAY_URL=discord.gateway_url,
        REPLICATE_API_TOKEN=replicate.token,
        REPLICATE_BASE_URL=replicate.api_url,
        DATABASE_URL=f"sqlite:///{work / 'lokiz.db'}",
        MEDIA_DIR=str(work / "media"),
        ADMIN_IDS=f"discord:{CAROL}",
        HTTP_PORT="0",
        STARTER_CREDITS=str(STARTER),
        GLITCH_MAX_SECONDS="3",
        MAX_MEDIA_MB_PER_USER="3",  # far above what one member sends, except in the quota test
        LOG_LEVEL="INFO",
    )
    for name in ("GENERATOR", "PUBLIC_URL", "TEMPLATES_FILE"):
        env.pop(name, None)
    return env


@contextlib.asynccontextmanager
async def discord_world(work: Path, *, model_delay: float = 0.3) -> AsyncIterator[World]:
    media = make_media(work / "fixtures")
    async with FakeDiscord() as discord, FakeReplicate() as replicate:
        discord.guild(GUILD, "Remix Club")
        discord.channel(GUILD, CHANNEL, "remix")
        discord.member(ALICE, "alice")
        discord.member(BOB, "bob")
        discord.member(MINJI, "minji", locale="ko")
        discord.member(CAROL, "carol")
        discord.member(DAVE, "dave")
        discord.member(ERIN, "erin")
        discord.member(GINA, "gina")
        for model in (TEMPLATE_MODEL, ANIMATE_MODEL, REPLACE_MODEL):
            replicate.script(model, delay=model_delay)
            replicate.set_media(model, media.result)
        bot = BotProcess(bot_env(discord, replicate, work), work)
        world = World(discord, replicate, media, bot, work)
        try:
            await world.start_bot()
            yield world
        finally:
            bot.stop()
            if bot.alive:
                bot.stop(signal.SIGKILL)
