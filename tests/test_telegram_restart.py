"""Killing the bot (kill -9) mid-job: after a restart the clip still arrives, once, and the
buttons of messages sent before the crash still work."""

from __future__ import annotations

import asyncio
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
    assert "Liked" in like.text


async def _until(predicate, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_kill_between_the_send_and_its_record_sends_again_once_saying_so(world: TelegramWorld) -> None:
    """kill -9 right after the clip reached the chat, before it was recorded: Telegram has no
    way to drop a duplicate, so the restart sends it once more, and says so in the caption."""
    tg = world.telegram
    world.replicate.script(VEO, delay=None)
    await world.bot.stop()
    world.env["LOKIZ_CRASH_AT"] = "after_send"  # armed in the bot process only
    await world.start_bot()
    sam = world.user("Sam")
    frame = await world.open_frame(sam, "0:02")
    for label in ("🎬 Template", "AI hug", "Next ➡"):
        await world.press(sam, frame, label)
        frame = await world.edited(sam, "editMessageCaption", frame)
    await world.confirm_on(sam, frame)
    job = await world.wait_job(sam, "running")
    await world.replicate.complete(job["prediction_id"])
    await _until(lambda: not world.bot.alive)  # it sent the clip, then died
    assert world.jobs(sam)[-1]["status"] == "succeeded", "sent but not recorded"
    del world.env["LOKIZ_CRASH_AT"]

    await world.start_bot()
    await world.wait_job(sam, "delivered")
    clips = [call.message() for call in tg.calls_of("sendVideo", chat_id=sam.chat_id) if call.ok]
    assert len(clips) == 2, "sent again at most once"
    assert "sent again after a restart" not in clips[0].caption
    assert "sent again after a restart" in clips[1].caption and "AI hug" in clips[1].caption
    assert world.balance(sam) == 30, "charged once, never refunded"
    assert len(world.replicate.predictions_for_job(job["id"])) == 1
