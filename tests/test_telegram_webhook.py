"""Webhook mode (TELEGRAM_WEBHOOK=true): updates arrive on the bot's HTTP server,
and only with the secret token Telegram was given."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from adapters.telegram.app import WEBHOOK_PATH
from tests.telegram_world import TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TelegramWorld]:
    home = tmp_path_factory.mktemp("telegram-webhook")
    port = free_port()
    started = await TelegramWorld.start(home, make_media(home / "input"), replicate=False, extra_env={
        "TELEGRAM_WEBHOOK": "true", "PUBLIC_URL": f"http://127.0.0.1:{port}", "HTTP_PORT": str(port),
    })
    yield started
    await started.stop()


async def test_updates_arrive_by_webhook_with_the_secret_token(world: TelegramWorld) -> None:
    tg = world.telegram
    assert tg.webhook_url.endswith(WEBHOOK_PATH)
    secret = tg.calls_of("setWebhook")[-1].params["secret_token"]
    assert secret and secret not in world.bot.log(), "the secret is not logged"
    tina = world.user("Tina")
    assert "Welcome" in (await world.say(tina, "/start")).text
    frame = await world.open_frame(tina, "2")
    await world.press(tina, frame, "+0.1s")
    assert "0:02.1" in (await world.edited(tina, "editMessageMedia", frame)).caption
    assert all(delivery.status == 200 for delivery in tg.webhook_deliveries)
    assert not tg.calls_of("getUpdates"), "no long polling in webhook mode"


async def test_a_forged_webhook_call_is_refused(world: TelegramWorld) -> None:
    tg = world.telegram
    update = {"update_id": 1, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 4242, "type": "private", "first_name": "Eve"},
        "from": {"id": 4242, "is_bot": False, "first_name": "Eve"}, "text": "/start",
    }}
    mark = tg.mark()
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "guessed"}):
            async with http.post(tg.webhook_url, data=json.dumps(update),
                                 headers={"Content-Type": "application/json", **headers}) as resp:
                assert resp.status == 401
    assert not [c for c in tg.calls[mark:] if c.params.get("chat_id") == 4242]
