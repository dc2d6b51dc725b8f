"""Delivering on Discord (the real bot process and discord.py against the fake Discord) when
the answer to the result's send is lost *after* Discord posted it: the engine retries once
with the same nonce, Discord answers with the message already there, and the clip is in
the channel exactly once, charged once."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.discord_world import ALICE, CHANNEL, TEMPLATE_MODEL, World, discord_world

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with discord_world(tmp_path_factory.mktemp("discord-delivery")) as running:
        yield running


def _job(world: World, job_id: str) -> sqlite3.Row:
    with sqlite3.connect(world.work / "lokiz.db") as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


@pytest.mark.parametrize(
    "lost", [{"status": 503}, {"status": 500, "disconnect": True}], ids=["5xx", "reset"]
)
async def test_a_lost_answer_after_the_clip_was_posted_leaves_one_clip(world: World, lost) -> None:
    fake, replicate = world.discord, world.replicate
    replicate.script(TEMPLATE_MODEL, delay=None)
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
    job_id = status["content"].rsplit(" ", 1)[-1].strip()
    # The next message the bot posts is the result: Discord posts it, the answer is lost.
    fake.fail_next("POST", rf"/channels/{CHANNEL}/messages", after=True, **lost)
    await replicate.complete(list(replicate.predictions)[-1])

    await world.edited_to(status["id"], "sent below", timeout=60)
    results = [m for m in fake.channel_messages(CHANNEL)
               if m["id"] not in earlier and m["attachments"] and f"<@{ALICE}>" in m["content"]]
    assert len(results) == 1, "exactly once"
    sends = [c for c in fake.find_calls("POST", rf"/channels/{CHANNEL}/messages")
             if c.json and c.json.get("nonce") == results[0]["nonce"]]
    assert len(sends) >= 2 and sends[0].answer_lost, "the lost answer was retried"
    job = _job(world, job_id)
    assert job["status"] == "delivered" and job["delivered_message_id"] == results[0]["id"]
    assert not job["delivery_unconfirmed"]
    world.assert_every_interaction_answered_in_time()
