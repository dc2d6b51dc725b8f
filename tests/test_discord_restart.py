"""Restarting LOKIZ mid-job on Discord: the clip still arrives and old buttons still work.

The bot process is stopped (SIGTERM, or killed with SIGKILL) while the model is
generating and started again; the job is re-attached from the database,
delivered into the channel once, and the buttons sent by the first process are
pressed on the second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.discord_world import (
    ALICE,
    BOB,
    CHANNEL,
    REPLACE_MODEL,
    TEMPLATE_MODEL,
    World,
    discord_world,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with discord_world(tmp_path_factory.mktemp("discord-restart")) as running:
        yield running


async def test_restart_mid_job_still_delivers_and_old_buttons_still_work(world: World) -> None:
    fake, replicate = world.discord, world.replicate
    replicate.script(TEMPLATE_MODEL, delay=None)  # generating until the test says it is done
    asked = await fake.slash(ALICE, CHANNEL, "template", {"at": "1", "template": "ai_hug"},
                             attachments={"video": world.media.video})
    studio = await world.answer(asked)
    assert "AI hug" in studio["content"]
    await world.handled(await fake.press(ALICE, studio["id"], "Next ➡"))
    await world.edited_to(studio["id"], "Ready: AI hug")
    await world.handled(await fake.press(ALICE, studio["id"], "✅ Confirm (20 credits)"))
    await replicate.wait_for(lambda: len(replicate.predictions) == 1, within=20)
    status = await world.channel_message(lambda m: "queued" in m["content"] or "generating" in m["content"])
    assert "✖ Cancel" in world.buttons(status)

    await world.restart_bot()
    prediction = next(iter(replicate.predictions))
    await replicate.complete(prediction)

    result = await world.channel_message(
        lambda m: f"<@{ALICE}>" in m["content"] and bool(m["attachments"]), timeout=60
    )
    _, info, _ = await world.clip_of(result)
    assert info.duration > 1
    assert len(replicate.predictions) == 1  # re-attached, not generated (or charged) twice
    await world.edited_to(status["id"], "sent below")

    # Buttons sent by the first process, pressed on the second:
    await world.handled(await fake.press(ALICE, studio["id"], "+1s"))
    await world.edited_to(studio["id"], "Frame at 0:02 ")
    liked = await fake.press(BOB, result["id"], "👍")
    assert "👍 Liked" in await world.ephemeral_text(liked)
    await fake.wait_until(lambda: "👍 1" in str(fake.message(int(result["id"]))["components"]))
    world.assert_every_interaction_answered_in_time()


async def test_a_crash_mid_job_still_delivers_after_the_next_start(world: World) -> None:
    """Killed with SIGKILL and restarted: the clip is delivered once and the old buttons still work."""
    fake, replicate = world.discord, world.replicate
    opened = await fake.slash(BOB, CHANNEL, "capture", {"at": "1"}, attachments={"video": world.media.video})
    studio = await world.answer(opened)
    assert "+1s" in world.buttons(studio)
    asked = await fake.slash(BOB, CHANNEL, "glitch", {"mode": "replace"},
                             attachments={"clip": world.media.video, "image": world.media.photo})
    confirm = await world.answer(asked)
    replicate.script(REPLACE_MODEL, delay=None)
    await world.handled(await fake.press(BOB, confirm["id"], "✅ Confirm (30 credits)"))
    await replicate.wait_for(lambda: len(replicate.predictions) == 2, within=20)

    await world.crash_bot()  # SIGKILL: the socket just dies, the session is never closed
    await world.start_bot()  # a fresh IDENTIFY, a new session
    prediction = list(replicate.predictions)[-1]
    await replicate.complete(prediction)
    result = await world.channel_message(
        lambda m: f"<@{BOB}>" in m["content"] and bool(m["attachments"]), timeout=60
    )
    assert result["message_reference"]["message_id"] == confirm["id"]
    assert len(replicate.predictions) == 2  # picked up again, not generated (or charged) twice

    # Buttons sent by the killed process, pressed on the new one:
    await world.handled(await fake.press(BOB, studio["id"], "+1s"))
    await world.edited_to(studio["id"], "Frame at 0:02 ")
    liked = await fake.press(ALICE, result["id"], "👍")
    assert "👍 Liked" in await world.ephemeral_text(liked)
    await fake.wait_until(lambda: "👍 1" in str(fake.message(int(result["id"]))["components"]))
    delivered = [m for m in fake.channel_messages(CHANNEL)
                 if m.get("message_reference", {}).get("message_id") == confirm["id"]
                 and m["attachments"]]
    assert [m["id"] for m in delivered] == [result["id"]]  # delivered once, even by now
    world.assert_every_interaction_answered_in_time()



async def test_a_kill_between_the_send_and_its_record_still_posts_the_clip_once(world: World) -> None:
    """kill -9 right after the clip was posted, before it was recorded: the restart sends it
    again with the same nonce, and Discord answers with the message already there."""
    fake, replicate = world.discord, world.replicate
    replicate.script(TEMPLATE_MODEL, delay=None)
    world.bot.env["LOKIZ_CRASH_AT"] = "after_send"  # armed in the bot process only
    await world.restart_bot()
    earlier = {m["id"] for m in fake.channel_messages(CHANNEL)}
    asked = await fake.slash(ALICE, CHANNEL, "template", {"at": "1", "template": "ai_hug"},
                             attachments={"video": world.media.video})
    studio = await world.answer(asked)
    await world.handled(await fake.press(ALICE, studio["id"], "Next ➡"))
    await world.edited_to(studio["id"], "Ready: AI hug")
    before = len(replicate.predictions)
    await world.handled(await fake.press(ALICE, studio["id"], "✅ Confirm (20 credits)"))
    await replicate.wait_for(lambda: len(replicate.predictions) == before + 1, within=20)
    status = await world.channel_message(
        lambda m: m["id"] not in earlier and ("queued" in m["content"] or "generating" in m["content"])
    )
    await replicate.complete(list(replicate.predictions)[-1])

    def results() -> list[dict]:
        return [m for m in fake.channel_messages(CHANNEL)
                if m["id"] not in earlier and m["attachments"] and f"<@{ALICE}>" in m["content"]]

    await fake.wait_until(lambda: not world.bot.alive, timeout=60)  # posted, then died
    posted = results()
    assert len(posted) == 1 and posted[0]["nonce"]
    assert "sent below" not in fake.message(int(status["id"]))["content"], "not recorded yet"
    del world.bot.env["LOKIZ_CRASH_AT"]
    await fake.wait_until(lambda: not fake.connected, timeout=10)

    repeats = fake.nonce_repeats
    await world.start_bot()
    await world.edited_to(status["id"], "sent below", timeout=60)
    assert fake.nonce_repeats == repeats + 1, "sent again with the same nonce"
    assert [m["id"] for m in results()] == [posted[0]["id"]], "the clip is in the channel once"
    assert "sent again" not in posted[0]["content"]
