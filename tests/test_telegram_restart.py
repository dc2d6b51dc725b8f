"""Killing the bot (kill -9) mid-job: after a restart the clip still arrives, once, and the
buttons of messages sent before the crash still work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.telegram_world import VEO, TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TelegramWorld]:
    home = tmp_path_factory.mktemp("telegram-restart")
    started = await TelegramWorld.start(home, make_media(home / "input"))
    yield started
    await started.stop()


async def test_kill_between_confirm_and_completion_still_delivers_once(world: TelegramWorld) -> None:
    tg = world.telegram
    world.replicate.script(VEO, delay=None)  # generation finishes only when the test says so
    rosa = world.user("Rosa")
    frame = await world.open_frame(rosa, "0:02")
    for label in ("🎬 Template", "AI hug", "Next ➡"):
        await world.press(rosa, frame, label)
        frame = await world.edited(rosa, "editMessageCaption", frame)
    await world.confirm_on(rosa, frame)
    status = await world.status_says(rosa, "queued")
    job = await world.wait_job(rosa, "running")
    assert world.balance(rosa) == 30

    world.bot.kill()
    assert not world.bot.alive
    await world.start_bot()
    assert "1 running jobs re-attached" in world.bot.log()
    await world.replicate.complete(job["prediction_id"])

    clip = await world.delivered(rosa)
    assert "AI hug" in clip.caption and clip.reply_to_message is not None
    done = await world.status_says(rosa, "sent below")
    assert done.message_id == status.message_id, "the same status message, edited after the restart"
    await world.wait_job(rosa, "delivered")
    assert len(tg.calls_of("sendVideo", chat_id=rosa.chat_id)) == 1
    assert len(world.replicate.predictions_for_job(job["id"])) == 1, "no second prediction"
    assert world.balance(rosa) == 30, "charged once"

    # Buttons from before the crash: the studio message and the result.
    current = tg.message(rosa.chat_id, frame.message_id)
    answer = await world.press(rosa, current, "+1s")
    assert not answer.show_alert
    assert "0:03" in (await world.edited(rosa, "editMessageMedia", frame)).caption
    like = await world.press(rosa, clip, "👍")
    assert "1 so far" in like.text
