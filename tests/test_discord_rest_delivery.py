"""Delivering a Discord result from a process that does not cache the job's channel: a
worker-only process (`python -m bot worker`, REST only, no gateway) or the process of
another shard, which never receives the guild. It must still reply in the server as the
process owning the shard would: mentioning the job's owner so they are notified; in a DM,
without a mention.

The production Discord client (`DiscordAdapter.connect_rest`) against the fake Discord.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from adapters.discord.app import DiscordAdapter
from core.jobs import QUEUED, Job, JobRequest
from core.notify import OutputMedia
from core.screens import Screen
from core.settings import load_settings
from tests.fakes.discord import FakeDiscord

GUILD = 820_000_000_000_000_001
CHANNEL = 820_000_000_000_000_010
ALICE = 820_000_000_000_000_101


def a_job(job_id: str, chat_id: int) -> Job:
    return Job(
        id=job_id, user_id=1, platform="discord", chat_id=str(chat_id), language="en",
        session_id=None, reply_to_message_id=None, status_message_id=None, action="music",
        model="m", backend="replicate", request=JobRequest("music", prompt="a"),
        prepared_inputs=None, prediction_id=None, price=5, status=QUEUED, error_class=None,
        error_detail=None, output_path=None, delivered_message_id=None, delivered_file_id=None,
        delivery_attempts=0, likes=0, created_at=time.time(), started_at=None, deadline_at=None,
        finished_at=None, owner_id=str(ALICE), owner_name="alice",
    )


@pytest_asyncio.fixture
async def rest_only(tmp_path: Path) -> AsyncIterator[tuple[FakeDiscord, DiscordAdapter]]:
    async with FakeDiscord() as fake:
        fake.guild(GUILD, "Remix Club")
        fake.channel(GUILD, CHANNEL, "remix")
        fake.member(ALICE, "alice")
        settings = load_settings(
            None, discord_bot_token=fake.token, discord_api_base=fake.base_url,
            discord_gateway_url=fake.gateway_url, database_url=f"sqlite:///{tmp_path / 'x.db'}",
            media_dir=str(tmp_path / "media"),
        )
        adapter = DiscordAdapter(settings, None)  # type: ignore[arg-type]  # delivering needs no desk
        await adapter.connect_rest()
        try:
            yield fake, adapter
        finally:
            await adapter.bot.close()


async def test_a_result_sent_without_the_channel_cached_mentions_its_owner_in_a_server(
    rest_only: tuple[FakeDiscord, DiscordAdapter], tmp_path: Path,
) -> None:
    fake, adapter = rest_only
    audio = tmp_path / "out.wav"
    audio.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert adapter.bot.get_channel(CHANNEL) is None  # nothing cached: no gateway

    receipt = await adapter.notifier.deliver(a_job("j-guild", CHANNEL), OutputMedia(audio, "audio"),
                                             Screen("🎵 Music · done"))
    message = fake.message(receipt.message_id)
    assert message["content"].startswith(f"<@{ALICE}> ")
    sent = fake.find_calls("POST", rf"/channels/{CHANNEL}/messages")[-1]
    assert [int(u) for u in sent.json["allowed_mentions"]["users"]] == [ALICE]

    dm = int(fake.dm(ALICE)["id"])
    receipt = await adapter.notifier.deliver(a_job("j-dm", dm), OutputMedia(audio, "audio"),
                                             Screen("🎵 Music · done"))
    assert not fake.message(receipt.message_id)["content"].startswith("<@")
