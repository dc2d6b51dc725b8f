"""No Replicate token at all: the same walk runs on the local ffmpeg backend, offline."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from core.media.probe import probe
from tests.telegram_world import TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TelegramWorld]:
    home = tmp_path_factory.mktemp("telegram-local")
    started = await TelegramWorld.start(home, make_media(home / "input"), replicate=False)
    yield started
    await started.stop()


async def test_the_walk_on_the_local_backend_delivers_a_real_clip(world: TelegramWorld) -> None:
    tg = world.telegram
    assert "backend local" in world.bot.log()
    sami = world.user("Sami")
    assert "50 credits" in (await world.say(sami, "/start")).text
    frame = await world.open_frame(sami, "0:02.5")
    await world.press(sami, frame, "+1s")
    frame = await world.edited(sami, "editMessageMedia", frame)
    assert "0:03.5" in frame.caption
    for label in ("🎬 Template", "AI hug", "4s", "Next ➡"):
        await world.press(sami, frame, label)
        frame = await world.edited(sami, "editMessageCaption", frame)
    assert "50 → 30" in frame.caption
    await world.confirm_on(sami, frame)
    await world.status_says(sami, "queued")

    clip = await world.delivered(sami, timeout=60)
    assert "AI hug" in clip.caption and "Local preview" in clip.caption
    info = await probe(world.delivered_path(clip))
    assert info.has_video and 3.5 <= info.duration <= 4.5
    sent = tg.calls_of("sendVideo", chat_id=sami.chat_id)[-1].params
    assert sent["width"] == info.width and sent["height"] == info.height
    await world.wait_job(sami, "delivered")
    assert "Balance: 30 credits" in (await world.say(sami, "/balance")).text


async def test_answers_quote_the_users_message_in_groups_but_not_in_private(world: TelegramWorld) -> None:
    tg = world.telegram
    lou = world.user("Lou")
    mark = tg.mark()
    await lou.send_text("/balance")
    private = await world.reply_to(lou, "sendMessage", after=mark)
    assert "reply_parameters" not in private.params, "the message right above needs no quote"

    group = world.group("Quote club")
    ada = world.user("Ada", chat=group)
    mark = tg.mark()
    sent = await ada.send_text("/balance")
    answer = await world.reply_to(ada, "sendMessage", after=mark)
    quoted = answer.params["reply_parameters"]
    quoted = quoted if isinstance(quoted, dict) else json.loads(quoted)
    assert quoted["message_id"] == sent.message_id, "in a group the answer says whom it answers"
