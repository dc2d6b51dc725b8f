"""A Discord interaction the bot answers too late (Discord: 404, 10062 Unknown interaction,
past its 3 seconds) is one warning line naming the interaction, not an error with a
traceback: nothing went wrong that the bot could fix. Any other failure keeps its traceback.

The production Discord adapter on the real Desk, in this process (so its log records can
be read), against the fake Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from adapters.discord.app import DiscordAdapter
from bot.app import build_services
from core.settings import load_settings
from tests.fakes.discord import FakeDiscord

GUILD = 830_000_000_000_000_001
CHANNEL = 830_000_000_000_000_010
ALICE = 830_000_000_000_000_101
CALLBACK = r"/interactions/\d+/[^/]+/callback"


@pytest_asyncio.fixture
async def discord(tmp_path: Path) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        fake.guild(GUILD, "Remix Club")
        fake.channel(GUILD, CHANNEL, "remix")
        fake.member(ALICE, "alice")
        settings = load_settings(
            None, discord_bot_token=fake.token, discord_api_base=fake.base_url,
            discord_gateway_url=fake.gateway_url, database_url=f"sqlite:///{tmp_path / 'x.db'}",
            media_dir=str(tmp_path / "media"),
        )
        services = await build_services(settings)
        adapter = DiscordAdapter(settings, services.desk)
        running = asyncio.create_task(adapter.run())
        try:
            await asyncio.wait_for(adapter.bot.connected.wait(), timeout=20)
            yield fake
        finally:
            await adapter.close()
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await running
            await services.close()


def logged(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if text in r.getMessage()]


async def test_an_interaction_answered_too_late_is_one_warning_line(
    discord: FakeDiscord, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    discord.interaction_ack_timeout = 0.0  # every answer arrives after Discord gave up
    try:
        await discord.slash(ALICE, CHANNEL, "top")
        await discord.wait_until(lambda: logged(caplog, "not answered"), timeout=15)
        await asyncio.sleep(0.3)  # anything else it would log about that interaction
    finally:
        discord.interaction_ack_timeout = 3.0
    [late] = logged(caplog, "not answered")
    assert late.levelno == logging.WARNING and late.exc_info is None
    assert "application_command interaction" in late.getMessage() and "TopAsked" in late.getMessage()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


async def test_other_failures_to_answer_keep_their_traceback(
    discord: FakeDiscord, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    discord.fail_next("POST", CALLBACK, 403, code=50001, message="Missing Access")
    asked = await discord.slash(ALICE, CHANNEL, "top")
    await discord.wait_until(lambda: [r for r in caplog.records if r.levelno >= logging.ERROR], timeout=15)
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.exc_info is not None and "TopAsked" in error.getMessage()
    assert logged(caplog, "not answered") == []
    await discord.wait_until(lambda: discord.interaction_responses(asked), timeout=15)  # told, after all
