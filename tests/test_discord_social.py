"""Social on Discord, end to end: the real bot (`python -m bot`) against a fake Discord.

Two channels of one server are two chats. Members make clips, like and remix each
other's, page through `/feed`, ask `/top` and `/post`, and delete posts; the bot is
restarted in between. Each test checks what a member would see in the channel.
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
    GUILD,
    MINJI,
    World,
    discord_world,
)
from tests.fakes.discord import FLAG_EPHEMERAL, PERMISSION_MANAGE_MESSAGES

pytestmark = pytest.mark.asyncio(loop_scope="module")

OTHER = 810_000_000_000_000_011  # a second channel: another chat
MODS = 810_000_000_000_000_030  # a role with Manage Messages
JSON = dict[str, object]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with discord_world(tmp_path_factory.mktemp("discord-social")) as running:
        fake = running.discord
        fake.channel(GUILD, OTHER, "memes")
        await fake.announce_channel(OTHER)
        fake.role(GUILD, MODS, "mods", PERMISSION_MANAGE_MESSAGES)
        fake.give_role(GUILD, ERIN, MODS)
        yield running
        running.assert_every_interaction_answered_in_time()


# --- what members do -------------------------------------------------------------------------
def _new_result(world: World, user: int, seen: set[str]) -> object:
    def found(message: dict) -> bool:  # type: ignore[type-arg]
        return (message["id"] not in seen and f"<@{user}>" in message["content"]
                and any(a["filename"].endswith(".mp4") for a in message["attachments"]))
    return found


async def posted(world: World, result: dict, channel: int) -> int:  # type: ignore[type-arg]
    """The post number of a delivered result, once its status message says it (the post is
    recorded right after the send)."""
    job = re.search(r"job (\S+)", result["content"]).group(1)  # type: ignore[union-attr]
    status = await world.channel_message(lambda m: f"Job {job}" in m["content"] and "📌 Post" in m["content"],
                                         channel=channel, timeout=30)
    return int(re.search(r"📌 Post (\d+)", status["content"]).group(1))  # type: ignore[union-attr]


async def make_clip(world: World, user: int, channel: int = CHANNEL) -> dict:  # type: ignore[type-arg]
    """`/template` → Next → Confirm: the member's AI hug clip, delivered in `channel`."""
    fake = world.discord
    seen = {m["id"] for m in fake.channel_messages(channel)}
    asked = await fake.slash(user, channel, "template", {"at": "1", "template": "ai_hug"},
                             attachments={"video": world.media.video})
    studio = await world.answer(asked)
    await world.handled(await fake.press(user, studio["id"], "Next ➡"))
    await world.edited_to(studio["id"], "Ready: AI hug")
    await world.handled(await fake.press(user, studio["id"], "✅ Confirm (20 credits)"))
    result = await world.channel_message(_new_result(world, user, seen), channel=channel, timeout=60)  # type: ignore[arg-type]
    result["post"] = await posted(world, result, channel)
    return result


async def remix(world: World, user: int, result: dict, channel: int = CHANNEL) -> dict:  # type: ignore[type-arg]
    """🌀 Remix on a result → the member's photo → Replace → Confirm: the remix, delivered."""
    fake = world.discord
    seen = {m["id"] for m in fake.channel_messages(channel)}
    pressed = await fake.press(user, result["id"], "🌀 Remix")
    asked = await world.answer(pressed)
    assert "send your image" in asked["content"]
    sent = await fake.slash(user, channel, "glitch", attachments={"image": world.media.photo})
    modes = await world.answer(sent)
    await world.handled(await fake.press(user, modes["id"], "🔁 Replace"))
    await world.edited_to(modes["id"], "Ready: Glitch · Replace")
    await world.handled(await fake.press(user, modes["id"], "✅ Confirm (30 credits)"))
    result = await world.channel_message(_new_result(world, user, seen), channel=channel, timeout=60)  # type: ignore[arg-type]
    result["post"] = await posted(world, result, channel)
    return result


async def feed(world: World, user: int, channel: int = CHANNEL, page: int | None = None) -> dict:  # type: ignore[type-arg]
    asked = await world.discord.slash(user, channel, "feed", {"page": page} if page else None)
    return await world.answer(asked)


async def said(world: World, user: int, command: str, options: dict | None = None,  # type: ignore[type-arg]
               channel: int = CHANNEL) -> str:
    """What the bot answers `user` alone (an ephemeral answer)."""
    asked = await world.discord.slash(user, channel, command, options)
    return await world.ephemeral_text(asked)


def post_ids(page: dict, owner: str) -> list[int]:  # type: ignore[type-arg]
    """The post numbers a feed page lists for `@owner`."""
    return [int(n) for n in re.findall(rf"@{owner} .*?post (\d+)", page["content"])]


def like_label(message: dict, number: int | None = None) -> str:  # type: ignore[type-arg]
    labels = [c.get("label", "") for row in message["components"] for c in row["components"]]
    prefix = f"#{number} 👍" if number is not None else "👍"
    return next(label for label in labels if label.startswith(prefix))


# --- the tests --------------------------------------------------------------------------------
async def test_a_feed_page_is_one_message_carrying_its_clips_as_attachments(world: World) -> None:
    fake = world.discord
    first = await make_clip(world, ALICE)
    second = await make_clip(world, BOB)
    assert {"🌀 Remix", "🗑 Delete"} <= set(world.buttons(first)) and "👍" in world.buttons(second)

    page = await feed(world, DAVE)
    assert not page["flags"] & FLAG_EPHEMERAL and page["embeds"] == []
    assert "Top clips of the last 7 days · page 1/1" in page["content"]
    assert len(post_ids(page, "alice")) == 1 and len(post_ids(page, "bob")) == 1
    videos = [a for a in page["attachments"] if a["content_type"] == "video/mp4"]
    assert len(videos) == len(page["attachments"]) == 2
    for attachment in videos:  # the clips themselves, uploaded again: playable
        _, info, _ = await world.clip_of({"id": page["id"], "attachments": [attachment]})
        assert info.duration > 1
    labels = world.buttons(page)
    assert {"#1 👍", "#2 👍", "#1 🌀 Remix", "#2 🌀 Remix"} <= set(labels)
    assert not any(label in ("◀", "▶") for label in labels)  # one page only
    commands = {c["name"]: c for c in fake.commands()}
    assert {"feed", "top", "post", "delete"} <= set(commands)
    assert commands["feed"]["description_localizations"]["ko"] == "이 채널에서 최근 7일간 인기 클립"
    [page_option] = commands["feed"]["options"]
    assert (page_option["name"], page_option["type"], page_option["min_value"]) == ("page", 4, 1)


async def test_likes_toggle_and_persist_across_a_restart(world: World) -> None:
    fake = world.discord
    clip = await make_clip(world, ALICE)
    liked = await fake.press(BOB, clip["id"], "👍")  # anyone in the channel may like
    assert "Liked" in await world.ephemeral_text(liked)
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍 1")
    again = await fake.press(BOB, clip["id"], "👍 1")  # pressing again takes it back
    assert "taken back" in await world.ephemeral_text(again)
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍")
    await fake.press(BOB, clip["id"], "👍")
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍 1")
    for owners in ("🔁 Again", "🎵 Add music"):  # the owner's buttons stay the owner's
        refused = await fake.press(BOB, clip["id"], owners)
        assert "not your session" in await world.ephemeral_text(refused)
    await fake.press(DAVE, clip["id"], "👍 1")
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍 2")

    await world.restart_bot()

    page = await feed(world, CAROL)
    assert re.search(r"1\. @alice · 👍 2 ", page["content"])  # the most liked comes first
    assert like_label(page, 1) == "#1 👍 2"
    others = [c for row in page["components"] for c in row["components"]]
    await world.handled(await fake.press(CAROL, page["id"], "#1 👍 2"))  # on the feed page itself
    turned = await fake.wait_until(lambda: like_label(m := fake.message(page["id"]), 1) == "#1 👍 3" and m)
    kept = [c for row in turned["components"] for c in row["components"]]
    assert [c["custom_id"] for c in kept] == [c["custom_id"] for c in others]  # the rest untouched
    assert turned["attachments"] == page["attachments"]
    await fake.press(ALICE, clip["id"], "👍 2")  # allowed, not ranked
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍 4")
    top = await world.answer(await fake.slash(DAVE, CHANNEL, "top"))
    assert re.search(r"1\. @alice · 👍 3\b", top["content"]), top["content"]


async def test_a_remix_of_a_remix_names_its_generation_and_links_both_sources(world: World) -> None:
    original = await make_clip(world, ALICE)
    assert "remix of" not in original["content"]
    remixed = await remix(world, BOB, original)
    assert "remix of @alice's clip · generation 2" in remixed["content"]
    assert remixed["message_reference"]["message_id"] == original["id"]  # it answers the source
    again = await remix(world, ERIN, remixed)
    assert "remix of @bob's clip · generation 3" in again["content"]
    assert again["message_reference"]["message_id"] == remixed["id"]  # a link to its source

    chain = await said(world, DAVE, "post", {"id": str(again["post"])})
    assert f"Post {again['post']} · generation 3" in chain and "by @erin" in chain
    assert f"generation 2: @bob's clip (post {remixed['post']})" in chain
    assert f"generation 1: @alice's clip (post {original['post']})" in chain
    page = await feed(world, ERIN)
    assert again["post"] in post_ids(page, "erin")


async def test_feed_in_one_channel_never_shows_another_channels_posts(world: World) -> None:
    fake = world.discord
    elsewhere = await make_clip(world, DAVE, OTHER)
    here = await feed(world, DAVE)
    assert "@dave" not in here["content"]
    there = await feed(world, DAVE, OTHER)
    daves = elsewhere["post"]
    assert post_ids(there, "dave") == [daves]
    assert "@alice" not in there["content"] and "@bob" not in there["content"]
    assert len(there["attachments"]) == 1
    _, shown_info, _ = await world.clip_of(there)
    _, sent_info, _ = await world.clip_of(elsewhere)
    assert abs(shown_info.duration - sent_info.duration) < 0.2  # Dave's clip, playable
    hidden = await said(world, ALICE, "post", {"id": str(daves)})  # not from this chat
    assert f"There is no post {daves} here" in hidden
    top = await world.answer(await fake.slash(DAVE, OTHER, "top"))
    assert "@alice" not in top["content"]

    # Its owner may bring it here (/post answers its owner anywhere); the remix made here
    # does not name or link a clip from another chat.
    shown = await world.answer(await fake.slash(DAVE, CHANNEL, "post", {"id": str(daves)}))
    assert shown["flags"] & FLAG_EPHEMERAL and "made in another chat" in shown["content"]
    pressed = await fake.press(DAVE, shown["id"], "🌀 Remix")
    assert "send your image" in (await world.answer(pressed))["content"]
    seen = {m["id"] for m in fake.channel_messages(CHANNEL)}
    modes = await world.answer(await fake.slash(DAVE, CHANNEL, "glitch", attachments={"image": world.media.photo}))
    await world.handled(await fake.press(DAVE, modes["id"], "🔁 Replace"))
    await world.edited_to(modes["id"], "Ready: Glitch · Replace")
    await world.handled(await fake.press(DAVE, modes["id"], "✅ Confirm (30 credits)"))
    brought = await world.channel_message(_new_result(world, DAVE, seen), timeout=60)  # type: ignore[arg-type]
    assert "remix of a clip from another chat · generation 2" in brought["content"]
    assert "@dave's clip" not in brought["content"]
    brought_post = await posted(world, brought, CHANNEL)
    chain = await said(world, ALICE, "post", {"id": str(brought_post)})
    assert "generation 1: a clip from another chat" in chain and f"(post {daves})" not in chain


async def test_delete_by_others_is_refused_and_by_the_owner_removes_the_post_everywhere(
    world: World,
) -> None:
    fake = world.discord
    clip = await make_clip(world, ALICE)
    await fake.press(BOB, clip["id"], "👍")
    await fake.wait_until(lambda: like_label(fake.message(clip["id"])) == "👍 1")
    mine = clip["post"]

    refused = await fake.press(BOB, clip["id"], "🗑 Delete")
    assert f"Only the clip's owner or an admin of this chat can delete post {mine}" in \
        await world.ephemeral_text(refused)
    korean = await said(world, MINJI, "delete", {"id": str(mine)})
    assert f"게시물 {mine}은(는) 만든 사람이나 이 채팅의 관리자만" in korean
    assert f"post {mine}" in (await feed(world, ALICE))["content"]  # still there
    shown = await world.answer(await fake.slash(ALICE, CHANNEL, "post", {"id": str(mine)}))
    assert {"👍 1", "🌀 Remix", "🗑 Delete"} <= set(world.buttons(shown))
    await fake.press(ALICE, shown["id"], "👍 1")  # only the 👍 changes; 🗑 stays for its owner
    updated = await fake.wait_until(lambda: "👍 2" in world.buttons(m := fake.message(shown["id"])) and m)
    assert world.buttons(updated) == ["👍 2", "🌀 Remix", "🗑 Delete"]

    await world.handled(await fake.press(ALICE, clip["id"], "🗑 Delete"))
    # The post's 👍 / 🌀 / 🗑 go with it; its owner's Again and Add music stay.
    await fake.wait_until(lambda: world.buttons(fake.message(clip["id"])) == ["🎵 Add music", "🔁 Again"])
    page = await feed(world, BOB)
    assert f"post {mine}" not in page["content"]
    assert f"post{mine}." not in " ".join(a["filename"] for a in page["attachments"])
    gone = await said(world, BOB, "post", {"id": str(mine)})
    assert f"Post {mine} was deleted" in gone


async def test_a_member_with_manage_messages_may_delete_in_their_channel_only(world: World) -> None:
    fake = world.discord
    clip = await make_clip(world, DAVE)
    daves = clip["post"]
    fake.overwrite(OTHER, MODS, deny=PERMISSION_MANAGE_MESSAGES)  # no moderating over there
    there = await feed(world, DAVE, OTHER)
    remote = max(post_ids(there, "dave"))
    refused = await said(world, ERIN, "delete", {"id": str(remote)}, channel=OTHER)
    assert f"Only the clip's owner or an admin of this chat can delete post {remote}" in refused

    done = await said(world, ERIN, "delete", {"id": str(daves)})  # Manage Messages here
    assert f"Post {daves} deleted" in done
    assert f"post {daves}" not in (await feed(world, DAVE))["content"]
    assert fake.message(clip["id"])["attachments"]  # the message itself stays: Discord's own moderation
    await fake.wait_until(lambda: world.buttons(fake.message(clip["id"])) == ["🎵 Add music", "🔁 Again"])


async def test_a_delete_typed_in_a_dm_updates_the_results_buttons_in_the_channel(
        world: World) -> None:
    fake = world.discord
    clip = await make_clip(world, CAROL)
    assert "🗑 Delete" in world.buttons(fake.message(clip["id"]))
    dm = fake.dm(CAROL)
    done = await said(world, CAROL, "delete", {"id": str(clip["post"])}, channel=int(dm["id"]))
    assert f"Post {clip['post']} deleted" in done
    # The post's 👍 / 🌀 / 🗑 go with it in the channel; its owner's Again and Add music stay.
    await fake.wait_until(lambda: world.buttons(fake.message(clip["id"])) == ["🎵 Add music", "🔁 Again"])


async def test_feed_pages_turn_in_place_replacing_the_clips(world: World) -> None:
    fake = world.discord
    page = await feed(world, CAROL)
    pages = int(re.search(r"page 1/(\d+)", page["content"]).group(1))  # type: ignore[union-attr]
    while pages < 2:  # more than five clips in the channel
        await make_clip(world, CAROL)
        page = await feed(world, CAROL)
        pages = int(re.search(r"page 1/(\d+)", page["content"]).group(1))  # type: ignore[union-attr]
    assert len(page["attachments"]) == 5 and "▶" in world.buttons(page)
    before = {a["filename"] for a in page["attachments"]}
    await world.handled(await fake.press(BOB, page["id"], "▶"))
    turned = await world.edited_to(page["id"], f"page 2/{pages}")
    after = {a["filename"] for a in turned["attachments"]}
    assert after and not after & before
    assert "#6 👍" in " ".join(world.buttons(turned)) and "◀" in world.buttons(turned)
    assert len([m for m in fake.channel_messages(CHANNEL) if m["id"] == page["id"]]) == 1
    await world.handled(await fake.press(BOB, page["id"], "◀"))
    back = await world.edited_to(page["id"], f"page 1/{pages}")
    assert {a["filename"] for a in back["attachments"]} == before
    second = await feed(world, DAVE, page=2)  # /feed page:2 opens there directly
    assert f"page 2/{pages}" in second["content"]
    assert {a["filename"] for a in second["attachments"]} == after


async def test_a_page_whose_clips_together_exceed_the_upload_limit_arrives_fitted(world: World) -> None:
    fake = world.discord
    clip = world.media.result.stat().st_size
    # One clip fits the channel, five together do not: Discord limits the whole upload.
    fake.upload_limit = int((2.5 * clip + 64 * 1024) / 0.98)
    try:
        page = await feed(world, BOB)
    finally:
        fake.upload_limit = 10 * 1024 * 1024
    assert len(page["attachments"]) == 5
    assert sum(a["size"] for a in page["attachments"]) <= int((2.5 * clip + 64 * 1024) / 0.98)
    for attachment in page["attachments"]:
        _, info, size = await world.clip_of({"id": page["id"], "attachments": [attachment]})
        assert info.duration > 1 and size < clip


async def test_a_clip_no_longer_stored_comes_from_its_message_until_that_link_expires(world: World) -> None:
    fake = world.discord
    clip = await make_clip(world, DAVE, OTHER)
    job = re.search(r"job (\S+)", clip["content"]).group(1)  # type: ignore[union-attr]
    stored = world.work / "media" / "posts" / f"{job}.mp4"
    assert stored.is_file()
    stored.unlink()  # as if the media store lost it
    page = await feed(world, DAVE, OTHER)
    newest = clip["post"]
    number = re.search(rf"(\d+)\. @dave .*post {newest}\b", page["content"]).group(1)  # type: ignore[union-attr]
    [attachment] = [a for a in page["attachments"] if f"post{newest}." in a["filename"]]
    assert fake.attachment_bytes(attachment) == fake.attachment_bytes(clip["attachments"][0])  # as sent

    fake.expire_attachment(clip["attachments"][0])
    page = await feed(world, DAVE, OTHER)
    assert not [a for a in page["attachments"] if f"post{newest}." in a["filename"]]
    assert f"#{number}: this clip is no longer stored." in page["content"]
    assert page["attachments"]  # the other clips still come


async def test_sharpest_nearby_moves_the_discord_frame_in_place(world: World) -> None:
    fake = world.discord
    asked = await fake.slash(BOB, CHANNEL, "capture", {"at": "2.5"}, attachments={"video": world.media.video})
    studio = await world.answer(asked)
    assert "✨ Sharpest nearby" in world.buttons(studio)
    await world.handled(await fake.press(BOB, studio["id"], "✨ Sharpest nearby"))
    moved = await world.edited_to(studio["id"], "✨ ")
    assert "sharpest frame" in moved["content"] and moved["attachments"]
    assert {"🎬 Template", "✨ Sharpest nearby"} <= set(world.buttons(moved))


async def test_a_page_refused_as_too_large_is_sent_again_with_smaller_clips(world: World) -> None:
    fake = world.discord
    clip = world.media.result.stat().st_size
    # Five clips fit what the channel says it takes, but Discord refuses the upload once:
    # the page comes again, fitted to three quarters of it.
    fake.upload_limit = int((5 * clip + 64 * 1024) / 0.98) + 4096
    fake.fail_next("POST", r"/webhooks/\d+/[^/]+", status=413, code=40005,
                   message="Request entity too large")
    try:
        page = await feed(world, ERIN)
    finally:
        fake.upload_limit = 10 * 1024 * 1024
    sends = [c for c in fake.find_calls("POST", r"/webhooks/\d+/[^/]+") if len(c.files) == 5]
    assert [c.status for c in sends[-2:]] == [413, 200]
    assert len(page["attachments"]) == 5 and sum(a["size"] for a in page["attachments"]) < 5 * clip


async def test_a_dm_is_a_chat_of_its_own(world: World) -> None:
    fake = world.discord
    dm = fake.dm(BOB)
    page = await feed(world, BOB, int(dm["id"]))
    assert "No clips in this chat" in page["content"] and page["attachments"] == []
    top = await world.answer(await fake.slash(BOB, int(dm["id"]), "top"))
    assert "@alice" not in top["content"]
    someone_elses = max(post_ids(await feed(world, BOB), "alice"))
    refused = await said(world, BOB, "delete", {"id": str(someone_elses)}, channel=int(dm["id"]))
    assert f"There is no post {someone_elses} here" in refused
