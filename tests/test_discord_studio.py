"""LOKIZ on Discord, end to end: the real bot (`python -m bot`) against a fake Discord.

One server, one channel, a few members; one bot process for the whole module.
Each test walks what a member does and checks what they would see.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.discord_world import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    DAVE,
    ERIN,
    GINA,
    MINJI,
    REPLACE_MODEL,
    World,
    discord_world,
)
from tests.fakes.discord import FLAG_EPHEMERAL

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with discord_world(tmp_path_factory.mktemp("discord-studio")) as running:
        yield running
        running.assert_every_interaction_answered_in_time()


async def balance_of(world: World, user: int) -> int:
    asked = await world.discord.slash(user, CHANNEL, "balance")
    text = await world.ephemeral_text(asked)
    return int(re.findall(r"\d+", text)[0])


async def test_capture_then_template_delivers_a_playable_clip_and_charges(world: World) -> None:
    fake = world.discord
    before = await balance_of(world, ALICE)
    asked = await fake.slash(ALICE, CHANNEL, "capture", {"at": "2.5"},
                             attachments={"video": world.media.video})
    studio = await world.answer(asked)
    assert "0:02.5" in studio["content"]
    assert studio["attachments"][0]["content_type"] == "image/jpeg"
    assert {"🎬 Template", "🌀 Glitch", "🎵 Music", "+1s"} <= set(world.buttons(studio))
    assert not studio["flags"] & FLAG_EPHEMERAL

    await world.handled(await fake.press(ALICE, studio["id"], "🎬 Template"))
    templates = await world.edited_to(studio["id"], "Templates")
    hug = world.option(templates, "AI hug")
    await world.handled(await fake.select(ALICE, studio["id"], world.select_of(templates)["custom_id"], [hug]))
    await world.edited_to(studio["id"], "AI hug")
    await world.handled(await fake.press(ALICE, studio["id"], "Next ➡"))
    confirm = await world.edited_to(studio["id"], "Ready: AI hug")
    assert "20 credits" in confirm["content"]
    await world.handled(await fake.press(ALICE, studio["id"], "✅ Confirm (20 credits)"))

    result = await world.channel_message(
        lambda m: any(a["filename"].endswith(".mp4") for a in m["attachments"])
        and m["author"]["id"] == str(fake.bot_id) and f"<@{ALICE}>" in m["content"]
    )
    assert result["message_reference"]["message_id"] == studio["id"]
    assert {"Remix", "Add music", "Again"} <= {label.split(" ", 1)[-1] for label in world.buttons(result)}
    _, info, _ = await world.clip_of(result)
    assert info.duration > 1 and info.width > 0
    assert await balance_of(world, ALICE) == before - 20


async def test_remix_this_clip_on_another_members_video_then_replace_delivers(world: World) -> None:
    fake = world.discord
    before = await balance_of(world, BOB)
    shared = await fake.post_user_message(
        ALICE, CHANNEL, "look at my dance", [fake.add_attachment(world.media.video, "dance.mp4", "video/mp4")]
    )
    remix = await fake.message_command(BOB, CHANNEL, "Remix this clip", shared)
    asked = await world.answer(remix)
    assert "send your image" in asked["content"] and "/glitch image" in asked["content"]

    sent = await fake.slash(BOB, CHANNEL, "glitch", attachments={"image": world.media.photo})
    modes = await world.answer(sent)
    assert "How should it work?" in modes["content"]
    assert {"🕺 Animate", "🔁 Replace"} <= set(world.buttons(modes))

    intruder = await fake.press(ALICE, modes["id"], "🔁 Replace")
    assert "not your session" in await world.ephemeral_text(intruder)
    assert fake.message(modes["id"]) == modes  # nothing changed for Bob

    await world.handled(await fake.press(BOB, modes["id"], "🔁 Replace"))
    await world.edited_to(modes["id"], "Ready: Glitch · Replace")
    await world.handled(await fake.press(BOB, modes["id"], "✅ Confirm (30 credits)"))

    result = await world.channel_message(
        lambda m: f"<@{BOB}>" in m["content"] and "Glitch · Replace" in m["content"]
        and bool(m["attachments"])
    )
    assert result["message_reference"]["message_id"] == shared["id"]  # replies to the shared clip
    _, info, _ = await world.clip_of(result)
    assert info.duration > 1
    assert await balance_of(world, BOB) == before - 30
    jobs = await world.ephemeral_text(await fake.slash(BOB, CHANNEL, "jobs"))
    assert "Glitch · Replace · delivered" in jobs


async def test_a_video_over_the_download_limit_is_refused_before_downloading(world: World) -> None:
    fake = world.discord
    huge = fake.add_attachment(b"\x00" * 1024, "huge.mp4", "video/mp4", ephemeral=True,
                               size=300 * 1024 * 1024)
    asked = await fake.slash(DAVE, CHANNEL, "capture", {"at": "1"}, attachments={"video": huge})
    text = await world.ephemeral_text(asked)
    assert "300 MB" in text and "up to 200 MB" in text
    assert not any(path.endswith("/huge.mp4") for path in fake.downloads)


async def test_a_member_over_the_media_quota_is_told_why(world: World) -> None:
    fake, frank = world.discord, 810_000_000_000_000_107
    fake.member(frank, "frank")
    clip = world.media.video.read_bytes()
    first, second = (clip + fill * (1600 * 1024 - len(clip)) for fill in (b"\0", b"\1"))
    asked = await fake.slash(frank, CHANNEL, "capture", {"at": "1"},
                             attachments={"video": fake.add_attachment(first, "a.mp4", "video/mp4")})
    assert "0:01" in (await world.answer(asked))["content"]
    asked = await fake.slash(frank, CHANNEL, "capture", {"at": "1"},
                             attachments={"video": fake.add_attachment(second, "b.mp4", "video/mp4")})
    answer = await world.answer(asked)
    assert "the limit is 3 MB per person" in answer["content"]


async def test_another_member_pressing_the_studio_buttons_is_refused(world: World) -> None:
    fake = world.discord
    asked = await fake.slash(DAVE, CHANNEL, "capture", {"at": "1"}, attachments={"video": world.media.video})
    studio = await world.answer(asked)
    for label in ("+1s", "🎬 Template", "✖ Cancel"):
        press = await fake.press(BOB, studio["id"], label)
        assert "not your session" in await world.ephemeral_text(press)
    assert fake.message(studio["id"]) == studio  # not edited: same text, frame and buttons

    await world.handled(await fake.press(DAVE, studio["id"], "+1s"))
    moved = await world.edited_to(studio["id"], "Frame at 0:02 ")
    assert moved["attachments"][0]["id"] != studio["attachments"][0]["id"]  # a new frame, in place


async def test_custom_prompt_opens_a_form_and_its_answer_continues_the_session(world: World) -> None:
    fake = world.discord
    asked = await fake.slash(ERIN, CHANNEL, "template", {"at": "3"}, attachments={"video": world.media.video})
    templates = await world.answer(asked)
    assert "Templates" in templates["content"] and world.select_of(templates)["options"]

    opened = await fake.press(ERIN, templates["id"], "✍️ Custom prompt")
    form = (await fake.wait_for_response(opened)).payload
    assert form["title"] == "Your prompt"
    submitted = await fake.submit_modal(ERIN, form["custom_id"], {"text": "a cat surfs a wave at sunset"})
    options = await world.answer(submitted)
    assert "Custom prompt" in options["content"]
    await world.handled(await fake.press(ERIN, options["id"], "Next ➡"))
    confirm = await world.edited_to(options["id"], "Ready: Custom prompt")
    assert "a cat surfs a wave at sunset" in confirm["content"]


async def test_a_member_uploads_their_image_inside_the_flow_with_no_dm_or_second_command(
    world: World,
) -> None:
    fake = world.discord
    shared = await fake.post_user_message(
        ALICE, CHANNEL, "surf clip", [fake.add_attachment(world.media.video, "surf.mp4", "video/mp4")]
    )
    remix = await fake.message_command(GINA, CHANNEL, "Remix this clip", shared)
    welcome = await world.welcomed(remix)  # a first contact is welcomed once, then served
    assert welcome["flags"] & FLAG_EPHEMERAL and f"{100} credits" in welcome["content"]
    asked = await world.answer(remix)
    assert world.buttons(asked)[0] == "📎 Upload" and "send your image" in asked["content"]

    opened = await fake.press(GINA, asked["id"], "📎 Upload")
    form = (await fake.wait_for_response(opened)).payload
    assert form["title"] == "Your image"
    photo = fake.add_attachment(world.media.photo, "me.jpg", "image/jpeg")
    submitted = await fake.submit_modal(GINA, form["custom_id"], {"file": photo})
    modes = await world.answer(submitted)
    assert "How should it work?" in modes["content"]
    assert {"🕺 Animate", "🔁 Replace"} <= set(world.buttons(modes)) and "📎 Upload" not in world.buttons(modes)


async def test_remix_on_a_message_without_a_video_says_so(world: World) -> None:
    fake = world.discord
    chat = await fake.post_user_message(ALICE, CHANNEL, "no clip here")
    remix = await fake.message_command(BOB, CHANNEL, "Remix this clip", chat)
    assert "has no video attachment" in await world.ephemeral_text(remix)


async def test_korean_member_gets_korean_text_until_they_choose_english(world: World) -> None:
    fake = world.discord
    asked = await fake.slash(MINJI, CHANNEL, "capture", {"at": "2"}, attachments={"video": world.media.video})
    studio = await world.answer(asked)
    assert "장면이에요" in studio["content"]
    assert "💳 잔액" in await world.ephemeral_text(await fake.slash(MINJI, CHANNEL, "balance"))

    chose = await fake.slash(MINJI, CHANNEL, "lang", {"language": "en"})
    assert "Language set to English" in await world.ephemeral_text(chose)
    assert "💳 Balance" in await world.ephemeral_text(await fake.slash(MINJI, CHANNEL, "balance"))
    await world.ephemeral_text(await fake.slash(MINJI, CHANNEL, "lang", {"language": "ko"}))

    korean = {c["name"]: c for c in fake.commands()}["capture"]["description_localizations"]
    assert korean and "캡처" in korean["ko"]


async def test_only_admins_can_grant_credits(world: World) -> None:
    # Erin, whom no other test here uses: Bob's earlier presses could trip his rate limit
    # (12 at once, then 1/s) on a fast machine.
    fake = world.discord
    before = await balance_of(world, ERIN)
    refused = await fake.slash(DAVE, CHANNEL, "grant", {"user": ERIN, "amount": 500})
    assert "admins only" in await world.ephemeral_text(refused)
    assert await balance_of(world, ERIN) == before

    granted = await fake.slash(CAROL, CHANNEL, "grant", {"user": ERIN, "amount": 15, "reason": "contest"})
    assert "Granted 15 credits" in await world.ephemeral_text(granted)
    assert await balance_of(world, ERIN) == before + 15
    credits = await world.ephemeral_text(await fake.slash(CAROL, CHANNEL, "credits", {"user": ERIN}))
    assert f"{before + 15} credits" in credits and "contest" in credits
    assert "Users:" in await world.ephemeral_text(await fake.slash(CAROL, CHANNEL, "stats"))
    grant = next(c for c in fake.commands() if c["name"] == "grant")
    assert int(grant["default_member_permissions"]) == 8  # Administrator only: hidden from others


async def test_result_larger_than_the_upload_limit_arrives_fitted_under_it(world: World) -> None:
    fake, limit = world.discord, 300_000
    assert world.media.big_result.stat().st_size > 2 * limit
    world.replicate.set_media(REPLACE_MODEL, world.media.big_result)
    fake.upload_limit = limit
    try:
        sent = await fake.slash(
            CAROL, CHANNEL, "glitch", {"mode": "replace"},
            attachments={"clip": world.media.video, "image": world.media.photo},
        )
        confirm = await world.answer(sent)
        assert "Ready: Glitch · Replace" in confirm["content"]
        await world.handled(await fake.press(CAROL, confirm["id"], "✅ Confirm (30 credits)"))
        result = await world.channel_message(
            lambda m: f"<@{CAROL}>" in m["content"] and bool(m["attachments"]), timeout=60
        )
        _, info, size = await world.clip_of(result)
        assert size <= limit and info.duration > 1
    finally:
        fake.upload_limit = 10 * 1024 * 1024
        world.replicate.set_media(REPLACE_MODEL, world.media.result)


async def test_a_video_sent_in_a_dm_and_a_typed_time_work_like_in_a_private_chat(world: World) -> None:
    fake = world.discord
    dm = int(fake.dm(ERIN)["id"])
    clip = fake.add_attachment(world.media.video, "holiday.mp4", "video/mp4")
    sent = await fake.post_user_message(ERIN, dm, "1.5", [clip])
    frame = await world.channel_message(lambda m: "Frame at 0:01.5" in m["content"], channel=dm)
    assert frame["message_reference"]["message_id"] == sent["id"]
    assert frame["attachments"] and "🎬 Template" in world.buttons(frame)

    typed = await fake.post_user_message(ERIN, dm, "0:03")
    again = await world.channel_message(lambda m: "Frame at 0:03 " in m["content"], channel=dm)
    assert again["message_reference"]["message_id"] == typed["id"]


async def test_in_a_server_a_mention_with_a_time_picks_the_moment_from_the_contact_sheet(
    world: World,
) -> None:
    fake = world.discord
    asked = await fake.slash(DAVE, CHANNEL, "capture", attachments={"video": world.media.video})
    sheet = await world.answer(asked)
    assert "Pick a moment" in sheet["content"] and "mention me" in sheet["content"]
    assert len(world.buttons(sheet)) == 10  # nine tiles and Cancel
    await fake.post_user_message(DAVE, CHANNEL, f"<@{fake.bot_id}> 0:04")
    frame = await world.channel_message(lambda m: "Frame at 0:04 " in m["content"])
    assert frame["attachments"]


async def test_music_then_add_to_clip_sends_the_clip_with_sound(world: World) -> None:
    fake = world.discord
    asked = await fake.slash(ALICE, CHANNEL, "music", {"prompt": "la la la, summer rain"})
    confirm = await world.answer(asked)
    assert "Ready: Music" in confirm["content"]
    await world.handled(await fake.press(ALICE, confirm["id"], "✅ Confirm (5 credits)"))
    song = await world.channel_message(
        lambda m: f"<@{ALICE}>" in m["content"] and "Music" in m["content"] and bool(m["attachments"])
    )
    assert song["attachments"][0]["filename"].endswith(".wav")
    added = await fake.press(ALICE, song["id"], "🎬 Add to clip")
    muxed = await world.channel_message(lambda m: "with music" in m["content"] and bool(m["attachments"]))
    assert muxed["interaction_metadata"]["id"] == str(added.id)
    _, info, _ = await world.clip_of(muxed)
    assert info.has_audio and info.duration > 1


async def test_discord_rate_limits_and_server_errors_do_not_lose_the_clip(world: World) -> None:
    fake = world.discord
    before = await balance_of(world, CAROL)
    channel_posts = rf"/channels/{CHANNEL}/messages"
    sent = await fake.slash(CAROL, CHANNEL, "glitch", {"mode": "animate"},
                            attachments={"clip": world.media.video, "image": world.media.photo})
    confirm = await world.answer(sent)
    start = len(fake.calls)
    fake.fail_next("POST", channel_posts, status=429, retry_after=0.3)
    fake.fail_next("POST", channel_posts, status=502)
    fake.fail_next("PATCH", rf"{channel_posts}/\d+", status=429, retry_after=0.2)
    await world.handled(await fake.press(CAROL, confirm["id"], "✅ Confirm (30 credits)"))
    result = await world.channel_message(
        lambda m: f"<@{CAROL}>" in m["content"] and "Animate" in m["content"] and bool(m["attachments"]),
        timeout=60,
    )
    statuses = [c.status for c in fake.calls[start:] if c.path.startswith(channel_posts)]
    assert 429 in statuses and 502 in statuses
    assert len([m for m in fake.channel_messages(CHANNEL) if "Animate ·" in m["content"]]) == 1
    _, info, _ = await world.clip_of(result)
    assert info.duration > 1
    assert await balance_of(world, CAROL) == before - 30


async def test_when_the_bot_loses_the_channel_the_job_is_refunded(world: World) -> None:
    fake = world.discord
    before = await balance_of(world, BOB)
    sent = await fake.slash(BOB, CHANNEL, "glitch", {"mode": "animate"},
                            attachments={"clip": world.media.video, "image": world.media.photo})
    confirm = await world.answer(sent)
    fake.fail_next("POST", rf"/channels/{CHANNEL}/messages", status=403, code=50001,
                   message="Missing Access", times=50)
    try:
        await world.handled(await fake.press(BOB, confirm["id"], "✅ Confirm (30 credits)"))
        await world.edited_to(confirm["id"], "started")
        await fake.wait_until(lambda: "refunded 30" in world.bot.log(), timeout=30)
    finally:
        fake.faults.clear()
    assert await balance_of(world, BOB) == before


async def test_every_interaction_was_answered_within_three_seconds(world: World) -> None:
    assert len(world.discord.interactions) > 20
    world.assert_every_interaction_answered_in_time()
    assert "Traceback" not in world.bot.log()
