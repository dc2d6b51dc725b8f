"""Social on Telegram end to end (SPEC §12): the real bot process against the fake Bot API
(inline mode on, as @BotFather /setinline leaves it) and the fake Replicate API.

Remix lineage and its privacy, likes that last across a restart, a chat's /feed that
never shows another chat, inline mode with the asker's own clips, 🗑 for owners and chat
admins only, and ✨ Sharpest nearby on a clip with known blurred frames.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.fakes.telegram import ChatUser, TelegramFake
from tests.media_factory import ffmpeg
from tests.telegram_world import ADMIN_ID, TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")
BOT = "@lokiz_test_bot"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TelegramWorld]:
    home = tmp_path_factory.mktemp("telegram-social")
    fake = await TelegramFake(inline_mode=True).start()
    started = await TelegramWorld.start(home, make_media(home / "input"), telegram=fake)
    yield started
    await started.stop()


# --- steps ------------------------------------------------------------------------------------
async def template_clip(world: TelegramWorld, user: ChatUser, *, group: bool = False) -> Any:
    """Video → frame → 🎬 Template → AI hug → Next → Confirm; the delivered clip, once its
    post is recorded (the status says its number)."""
    tg = world.telegram
    mark = tg.mark()
    await user.send_video(world.media.clip, caption=f"{BOT} 0:02" if group else "0:02")
    frame = (await world.reply_to(user, "sendPhoto", after=mark)).message()
    for label in ("🎬 Template", "AI hug", "Next ➡"):
        await world.press(user, frame, label)
        frame = await world.edited(user, "editMessageCaption", frame)
    mark = tg.mark()
    await world.confirm_on(user, frame)
    return await delivered_after(world, user, mark)


async def delivered_after(world: TelegramWorld, user: ChatUser, mark: int) -> Any:
    clip = (await world.reply_to(user, "sendVideo", after=mark, timeout=40)).message()
    await world.telegram.wait_until(lambda: post_of(world, clip) is not None, timeout=15)
    return clip


async def remix_with_photo(world: TelegramWorld, user: ChatUser, ask: Any) -> Any:
    """Answer "send your image" with a photo, pick Replace, confirm; the delivered remix."""
    tg = world.telegram
    mark = tg.mark()
    await user.send_photo(world.media.photo, reply_to=ask)
    modes = (await world.reply_to(user, "sendPhoto", after=mark)).message()
    await world.press(user, modes, "🔁 Replace")
    modes = await world.edited(user, "editMessageCaption", modes)
    mark = tg.mark()
    await world.confirm_on(user, modes)
    return await delivered_after(world, user, mark)


async def press_then_message(world: TelegramWorld, user: ChatUser, message: Any, label: str) -> Any:
    mark = world.telegram.mark()
    answer = await world.press(user, message, label)
    assert not answer.show_alert, answer.text
    return (await world.reply_to(user, "sendMessage", after=mark)).message()


def post_of(world: TelegramWorld, clip: Any) -> int | None:
    rows = world.query("SELECT id FROM posts WHERE chat_id = ? AND message_id = ?",
                       (str(clip.chat.id), str(clip.message_id)))
    return int(rows[0]["id"]) if rows else None


def feed_post_ids(calls: list[Any]) -> list[int]:
    return [int(m.group(1)) for call in calls
            if (m := re.search(r"post (\d+)", str(call.params.get("caption") or call.params.get("text"))))]


# --- lineage ------------------------------------------------------------------------------------
async def test_a_remix_of_a_remix_names_both_sources_in_the_chat_and_none_elsewhere(world: TelegramWorld):
    group = world.group("Lineage club")
    boris = world.user("Boris", chat=group, username="boris")
    anna = world.user("Anna", chat=group, username="anna")
    carl = world.user("Carl", chat=group, username="carl")
    original = await template_clip(world, boris, group=True)
    original_post = post_of(world, original)
    assert "remix of" not in original.caption, "an original names no source"
    done = await world.status_says(boris, f"Post {original_post}")
    assert f"/post {original_post}" in done.text

    # 🌀 on Boris's result: Anna's own session with that clip (anyone in the chat may press it).
    ask = await press_then_message(world, anna, original, "🌀 Remix")
    assert "send your image" in ask.text
    remix = await remix_with_photo(world, anna, ask)
    assert "remix of @boris's clip · generation 2" in remix.caption

    # /glitch as a reply to Anna's result: generation 3, and the chain names both sources.
    ask = await world.say(carl, "/glitch", reply_to=remix)
    assert "send your image" in ask.text
    third = await remix_with_photo(world, carl, ask)
    assert "remix of @anna's clip · generation 3" in third.caption
    third_post = post_of(world, third)
    chain = await world.say(carl, f"/post {third_post}")
    assert f"Post {third_post} · generation 3" in chain.text and "by @carl" in chain.text
    assert f"generation 2: @anna's clip (post {post_of(world, remix)})" in chain.text
    assert f"generation 1: @boris's clip (post {original_post})" in chain.text

    # Elsewhere (a private chat): a stranger is told there is no such post; the owner sees
    # theirs without the group's names, and a remix made there does not name its source.
    stranger = world.user("Dora")
    hidden = await world.say(stranger, f"/post {third_post}")
    assert f"no post {third_post} here" in hidden.text and "@anna" not in hidden.text
    alone = world.user("Anna", user_id=anna.id, username="anna")  # Anna's private chat
    own = await world.say(alone, f"/post {third_post}")
    assert f"no post {third_post} here" in own.text, "not hers, not this chat"
    own = await world.say(alone, f"/post {post_of(world, remix)}")
    assert "made in another chat" in own.text and "@boris" not in own.text
    assert "generation 1: a clip from another chat" in own.text
    await world.say(world.user("Admin", user_id=ADMIN_ID), f"/grant {anna.id} 30")
    ask = await press_then_message(world, alone, own, "🌀 Remix")
    fourth = await remix_with_photo(world, alone, ask)
    assert "remix of a clip from another chat · generation 3" in fourth.caption
    assert "@anna" not in fourth.caption and "@boris" not in fourth.caption


# --- likes ----------------------------------------------------------------------------------------
async def test_likes_toggle_one_per_person_and_survive_a_restart(world: TelegramWorld):
    tg = world.telegram
    group = world.group("Like club")
    maya = world.user("Maya", chat=group, username="maya")
    nick = world.user("Nick", chat=group)
    clip = await template_clip(world, maya, group=True)
    post = post_of(world, clip)

    liked = await world.press(nick, clip, "👍")
    assert "Liked" in liked.text
    await tg.wait_until(lambda: "👍 1" in tg.buttons(tg.message(group.id, clip.message_id)))
    again = await world.press(nick, tg.message(group.id, clip.message_id), "👍 1")
    assert "taken back" in again.text
    await tg.wait_until(lambda: "👍" in tg.buttons(tg.message(group.id, clip.message_id)))
    await world.press(nick, tg.message(group.id, clip.message_id), "👍")
    await tg.wait_until(lambda: "👍 1" in tg.buttons(tg.message(group.id, clip.message_id)))
    await world.press(maya, tg.message(group.id, clip.message_id), "👍 1")  # her own: shown, not ranked
    await tg.wait_until(lambda: "👍 2" in tg.buttons(tg.message(group.id, clip.message_id)))

    await world.bot.stop()
    await world.start_bot()
    rows = world.query("SELECT likes, score FROM posts WHERE id = ?", (post,))
    assert (rows[0]["likes"], rows[0]["score"]) == (2, 1)
    top = await world.say(nick, "/top")
    assert "1. @maya · 👍 1" in top.text, "self-likes are not ranked"
    taken = await world.press(nick, tg.message(group.id, clip.message_id), "👍 2")
    assert "taken back" in taken.text, "the like from before the restart is remembered"
    await tg.wait_until(lambda: "👍 1" in tg.buttons(tg.message(group.id, clip.message_id)))
    assert world.query("SELECT COUNT(*) AS n FROM post_likes WHERE post_id = ?", (post,))[0]["n"] == 1

    # 👍 under the owner's /post answer changes the count alone: her 🗑 stays.
    shown = await world.say(maya, f"/post {post}")
    assert tg.buttons(shown) == ["👍 1", "🌀 Remix", "🗑 Delete"]
    await world.press(nick, shown, "👍 1")
    await tg.wait_until(lambda: tg.buttons(tg.message(group.id, shown.message_id))
                        == ["👍 2", "🌀 Remix", "🗑 Delete"])


# --- the chat's feed ------------------------------------------------------------------------------
async def test_feed_in_one_chat_never_shows_another_chats_posts(world: TelegramWorld):
    tg = world.telegram
    chat_a, chat_b = world.group("Chat A"), world.group("Chat B")
    olga = world.user("Olga", chat=chat_a, username="olga")
    pavel = world.user("Pavel", chat=chat_b, username="pavel")
    in_a = post_of(world, await template_clip(world, olga, group=True))
    in_b = post_of(world, await template_clip(world, pavel, group=True))

    mark = tg.mark()
    await olga.send_text("/feed")
    header = (await world.reply_to(olga, "sendMessage", after=mark)).message()
    assert "Top clips of the last 7 days" in header.text
    await tg.wait_until(lambda: tg.calls_of("sendVideo", chat_id=chat_a.id)[-1].index > mark)
    shown = [c for c in tg.calls[mark:] if c.method == "sendVideo" and c.ok]
    assert {c.params["chat_id"] for c in shown} == {chat_a.id}
    assert feed_post_ids(shown) == [in_a] and in_b not in feed_post_ids(shown)
    video = shown[0].params["video"]
    assert not str(video).startswith("attach://"), "the clip goes by its file id: nothing uploads"
    feed_clip = shown[0].message()
    assert {"👍", "🌀 Remix"} <= set(tg.buttons(feed_clip))

    mark = tg.mark()
    await pavel.send_text("/feed")
    await world.reply_to(pavel, "sendMessage", after=mark)
    await tg.wait_until(lambda: any(c.method == "sendVideo" for c in tg.calls[mark:]))
    assert feed_post_ids([c for c in tg.calls[mark:] if c.method == "sendVideo"]) == [in_b]
    # A file id Telegram no longer takes: the kept clip is uploaded instead.
    with sqlite3.connect(world.home / "lokiz.db") as db:
        db.execute("UPDATE posts SET file_id = 'BAACAgIAAxk-gone' WHERE id = ?", (in_a,))
    mark = tg.mark()
    await olga.send_text("/feed")
    await tg.wait_until(lambda: any(c.method == "sendVideo" and c.ok for c in tg.calls[mark:]))
    tried = [c for c in tg.calls[mark:] if c.method == "sendVideo"]
    assert tried[0].params["video"] == "BAACAgIAAxk-gone" and not tried[0].ok
    assert str(tried[-1].params["video"]).startswith("attach://") and tried[-1].ok
    # A forged press on another chat's post does nothing here.
    forged = await (await olga.press_data(feed_clip, f"lz:post.like:{in_b}")).wait_answer()
    assert forged.show_alert and world.query("SELECT likes FROM posts WHERE id = ?", (in_b,))[0]["likes"] == 0


# --- inline mode --------------------------------------------------------------------------------
async def test_inline_query_answers_the_askers_own_clips_as_cached_videos(world: TelegramWorld):
    rita = world.user("Rita", username="rita")
    sam = world.user("Sam", username="sam")
    mine = await template_clip(world, rita)
    await template_clip(world, sam)
    post = post_of(world, mine)

    query = await rita.inline_query("")
    answer = await query.wait_answer(timeout=15)
    assert answer.is_personal and 0 < answer.cache_time <= 300
    assert [r["id"] for r in answer.results] == [str(post)], "only her own clips"
    [result] = answer.results
    assert result["type"] == "video" and result["video_file_id"] == mine.video.file_id
    assert result["title"]

    filtered = await (await rita.inline_query("hug")).wait_answer(timeout=15)
    assert [r["id"] for r in filtered.results] == [str(post)], "a template name filters"
    none = await (await rita.inline_query("dragon")).wait_answer(timeout=15)
    assert none.results == []
    stranger = world.user("Tom")
    assert (await (await stranger.inline_query("")).wait_answer(timeout=15)).results == []

    shared = await rita.choose_inline_result(answer, str(post))  # sent as the same file
    assert shared.video.file_id == mine.video.file_id


async def test_inline_queries_typed_too_fast_get_a_slow_down_button_and_no_clips(world: TelegramWorld):
    yan = world.user("Yan", username="yan")
    await template_clip(world, yan)
    typing = world.user("Yan", user_id=yan.id, username="yan", language_code="ko")  # a Korean client
    queries = [await typing.inline_query("") for _ in range(40)]  # a burst of keystrokes
    answers = [await query.wait_answer(timeout=15) for query in queries]
    assert answers[0].button is None and len(answers[0].results) == 1, "within the limit: her clip"
    slowed = [answer for answer in answers if answer.button is not None]
    assert len(slowed) >= 5, "20 at once, then 2 a second"
    for answer in slowed:
        assert answer.results == [] and answer.is_personal and answer.cache_time <= 5
        assert answer.button["start_parameter"] == "slow"
        assert "잠시 뒤에 다시" in answer.button["text"], "in her client's language"
    other = world.user("Zoe")
    calm = await (await other.inline_query("")).wait_answer(timeout=15)
    assert calm.button is None, "another person is not slowed down"


# --- deleting -------------------------------------------------------------------------------------
async def test_delete_is_for_the_owner_and_chat_admins_and_removes_the_post_everywhere(world: TelegramWorld):
    tg = world.telegram
    group = world.group("Delete club")
    uma = world.user("Uma", chat=group, username="uma")
    vic = world.user("Vic", chat=group)
    boss = world.user("Wanda", chat=group)
    tg.set_member_status(group.id, boss.id, "administrator")
    first = await template_clip(world, uma, group=True)
    second = await template_clip(world, uma, group=True)
    first_post, second_post = post_of(world, first), post_of(world, second)
    await world.press(vic, first, "👍")

    refused = await world.press(vic, first, "🗑 Delete")
    assert refused.show_alert and "Only the clip's owner" in refused.text
    said = await world.say(vic, f"/delete {first_post}")
    assert "Only the clip's owner" in said.text
    assert world.query("SELECT deleted_at FROM posts WHERE id = ?", (first_post,))[0]["deleted_at"] is None

    done = await world.press(uma, first, "🗑 Delete")
    assert f"Post {first_post} deleted" in done.text
    studio_only = ["🎵 Add music", "🔁 Again"]  # the post's 👍 / 🌀 / 🗑 go with it
    await tg.wait_until(lambda: tg.buttons(tg.message(group.id, first.message_id)) == studio_only)
    by_admin = await world.say(boss, f"/delete {second_post}")
    assert f"Post {second_post} deleted" in by_admin.text
    assert tg.calls_of("getChatMember", chat_id=group.id, user_id=boss.id)
    await tg.wait_until(lambda: tg.buttons(tg.message(group.id, second.message_id)) == studio_only)

    mark = tg.mark()
    await uma.send_text("/feed")
    header = (await world.reply_to(uma, "sendMessage", after=mark)).message()
    assert "No clips in this chat" in header.text
    top = await world.say(uma, "/top")
    assert "@uma" not in top.text, "a deleted post's likes leave the ranking"
    alone = world.user("Uma", user_id=uma.id, username="uma")
    inline = await (await alone.inline_query("")).wait_answer(timeout=15)
    assert str(first_post) not in [r["id"] for r in inline.results]
    assert str(second_post) not in [r["id"] for r in inline.results]
    gone = await world.say(uma, f"/post {first_post}")
    assert "was deleted" in gone.text


async def test_a_deleted_clips_owner_keeps_again_and_add_music_on_its_result(world: TelegramWorld):
    tg = world.telegram
    xena = world.user("Xena", username="xena")
    clip = await template_clip(world, xena)
    post = post_of(world, clip)
    said = await world.say(xena, f"/delete {post}")
    assert f"Post {post} deleted" in said.text
    studio_only = ["🎵 Add music", "🔁 Again"]
    await tg.wait_until(lambda: tg.buttons(tg.message(xena.chat_id, clip.message_id)) == studio_only)

    mark = tg.mark()
    again = await world.press(xena, clip, "🔁 Again")
    assert "started" in again.text.lower(), again.text
    await tg.wait_until(  # the next version of Again, still without the post's buttons
        lambda: tg.buttons(tg.message(xena.chat_id, clip.message_id)) == ["🎵 Add music", "🔁 Again (1 started)"])
    await delivered_after(world, xena, mark)  # the repeat is a clip (and a post) of its own
    asked = await press_then_message(world, xena, clip, "🎵 Add music")
    assert "music" in asked.text.lower()


async def test_a_delete_typed_in_a_private_chat_updates_the_results_buttons_in_the_group(
        world: TelegramWorld):
    tg = world.telegram
    group = world.group("Far delete club")
    yara = world.user("Yara", chat=group, username="yara")
    clip = await template_clip(world, yara, group=True)
    post = post_of(world, clip)
    assert "🗑 Delete" in tg.buttons(tg.message(group.id, clip.message_id))

    alone = world.user("Yara", user_id=yara.id, username="yara")  # her private chat with the bot
    said = await world.say(alone, f"/delete {post}")
    assert f"Post {post} deleted" in said.text
    studio_only = ["🎵 Add music", "🔁 Again"]  # the post's 👍 / 🌀 / 🗑 go with it
    await tg.wait_until(lambda: tg.buttons(tg.message(group.id, clip.message_id)) == studio_only)


# --- ✨ Sharpest nearby --------------------------------------------------------------------------
async def test_sharpest_nearby_moves_a_blurred_moment_to_a_sharp_frame(world: TelegramWorld, tmp_path: Path):
    blurred = tmp_path / "blurred.mp4"  # 3 s, blurred except 1.20–1.32 s and 2.60–2.72 s
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3",
        "-vf", "boxblur=8:2:enable='not(between(t,1.19,1.33)+between(t,2.59,2.73))'",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-g", "25",
        "-pix_fmt", "yuv420p", blurred,
    )
    xena = world.user("Xena")
    mark = world.telegram.mark()
    await xena.send_video(blurred, caption="1.0")
    frame = (await world.reply_to(xena, "sendPhoto", after=mark)).message()
    assert "Frame at 0:01 of" in frame.caption
    await world.press(xena, frame, "✨ Sharpest nearby")
    frame = await world.edited(xena, "editMessageMedia", frame)
    moved = re.search(r"Moved \+(\d\.\d\d) s to the sharpest frame", frame.caption)
    assert moved, frame.caption
    assert 0.19 <= float(moved.group(1)) <= 0.33
    row = world.query("SELECT data FROM sessions WHERE chat_id = ? AND message_id = ?",
                      (str(xena.chat_id), str(frame.message_id)))
    assert row and re.search(r'"at": 1\.(19|2\d|3[0-3])', row[0]["data"]), row
