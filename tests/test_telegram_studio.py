"""The Telegram studio end to end: the real bot process, the fake Bot API, fake Replicate.

One bot process serves the whole module; every test is its own set of users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from core.media.probe import probe
from tests.fakes.telegram import Call
from tests.telegram_world import ADMIN_ID, BARK, VEO, WAN_REPLACE, TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TelegramWorld]:
    home = tmp_path_factory.mktemp("telegram-studio")
    started = await TelegramWorld.start(home, make_media(home / "input"))
    yield started
    await started.stop()


def words(message: object) -> str:
    return getattr(message, "caption", None) or getattr(message, "text", None) or ""


async def test_private_walk_from_video_to_a_delivered_clip(world: TelegramWorld) -> None:
    tg = world.telegram
    alice = world.user("Alice")
    welcome = await world.say(alice, "/start")
    assert "Welcome to LOKIZ" in welcome.text and "50 credits" in welcome.text

    frame = await world.open_frame(alice, "0:02.5")
    assert "0:02.5" in frame.caption
    assert {"+1s", "🎬 Template", "🌀 Glitch", "🎵 Music", "✖ Cancel"} <= set(tg.buttons(frame))

    await world.press(alice, frame, "+1s")
    frame = await world.edited(alice, "editMessageMedia", frame)
    assert "0:03.5" in frame.caption and frame.photo, "the preview is replaced in place"

    await world.press(alice, frame, "🎬 Template")
    frame = await world.edited(alice, "editMessageCaption", frame)
    assert "AI hug" in tg.buttons(frame)
    await world.press(alice, frame, "AI hug")
    frame = await world.edited(alice, "editMessageCaption", frame)
    assert "AI hug" in frame.caption and "Next ➡" in tg.buttons(frame)
    mark = tg.mark()
    same = await world.press(alice, frame, "✅ 6s")  # already chosen: "not modified", no error
    assert not same.show_alert
    await tg.wait_for(lambda c: c.method == "editMessageCaption" and "not modified" in (c.error or ""),
                      after=mark)
    await world.press(alice, frame, "Next ➡")
    frame = await world.edited(alice, "editMessageCaption", frame)
    assert "20 credits" in frame.caption and "50 → 30" in frame.caption

    answer = await world.confirm_on(alice, frame)
    assert not answer.show_alert
    status = await world.status_says(alice, "queued")
    assert status.reply_to_message is not None, "the status replies to the request"
    assert "✖ Cancel" in tg.buttons(status)

    clip = await world.delivered(alice)
    assert clip.reply_to_message is not None and clip.reply_to_message.video is not None
    assert "AI hug" in clip.caption and "20 credits" in clip.caption
    assert {"🌀 Remix", "🎵 Add music", "🔁 Again", "👍"} <= set(tg.buttons(clip))
    sent = tg.calls_of("sendVideo", chat_id=alice.chat_id)[-1].params
    assert sent["supports_streaming"] is True and sent["width"] == 320 and sent["height"] == 240
    assert sent["duration"] >= 1 and str(sent.get("thumbnail", "")).startswith("attach://")
    info = await probe(world.delivered_path(clip))
    assert info.has_video and info.duration > 1

    done = await world.status_says(alice, "sent below")
    assert done.message_id == status.message_id, "one status message, edited through the states"
    assert tg.buttons(done) == [], "no Cancel once it is done"
    assert world.balance(alice) == 30

    balance = await world.say(alice, "/balance")
    assert "Balance: 30 credits" in balance.text


async def test_a_video_without_time_gets_a_contact_sheet_with_tiles(world: TelegramWorld) -> None:
    bob = world.user("Bob")
    sheet = await world.open_frame(bob, at=None)
    tiles = [label for label in world.telegram.buttons(sheet) if label[0].isdigit()]
    assert len(tiles) == 9 and "Pick a moment" in sheet.caption
    await world.press(bob, sheet, tiles[4])
    frame = await world.edited(bob, "editMessageMedia", sheet)
    assert tiles[4] in frame.caption

    mark = world.telegram.mark()
    await bob.send_text("0:01")  # a typed time works too
    typed = (await world.reply_to(bob, "sendPhoto", after=mark)).message()
    assert "Frame at 0:01 " in typed.caption
    await world.press(bob, typed, "✖ Cancel")
    closed = await world.edited(bob, "editMessageCaption", typed)
    assert "Closed" in closed.caption and world.telegram.buttons(closed) == []


async def test_group_glitch_replies_to_a_members_clip_and_mentions_the_caller(world: TelegramWorld) -> None:
    tg = world.telegram
    group = world.group("Remix club")
    anna = world.user("Anna", chat=group)
    boris = world.user("Boris", chat=group, username="boris_b")
    shared = await anna.send_video(world.media.clip)  # privacy mode: the bot does not see it

    ask = await world.say(boris, "/glitch", reply_to=shared)
    assert "send your image" in ask.text and "Reply to this message with your photo" in ask.text
    assert ask.reply_to_message.message_id != shared.message_id  # it answers the /glitch

    mark = tg.mark()
    await boris.send_photo(world.media.photo, reply_to=ask)
    modes = (await world.reply_to(boris, "sendPhoto", after=mark)).message()
    assert {"🕺 Animate", "🔁 Replace"} <= set(tg.buttons(modes))
    await world.press(boris, modes, "🔁 Replace")
    modes = await world.edited(boris, "editMessageCaption", modes)
    assert "30 credits" in modes.caption
    await world.confirm_on(boris, modes)

    clip = await world.delivered(boris)
    assert clip.caption.startswith("Boris ") and "Glitch · Replace" in clip.caption
    mention = clip.caption_entities[0]
    assert mention.type == "text_mention" and mention.user.id == boris.id
    creates = world.replicate.creates(WAN_REPLACE)
    assert len(creates) >= 1
    assert world.balance(boris) == 50 - 30
    assert not world.jobs(anna), "Anna's clip, Boris's job"
    info = await probe(world.delivered_path(clip))
    assert info.has_video


async def test_group_member_cannot_press_the_owners_buttons(world: TelegramWorld) -> None:
    tg = world.telegram
    group = world.group("Two friends")
    owner = world.user("Olga", chat=group)
    other = world.user("Petr", chat=group)
    mark = tg.mark()
    await owner.send_video(world.media.clip, caption="@lokiz_test_bot 0:02")
    frame = (await world.reply_to(owner, "sendPhoto", after=mark)).message()
    before = tg.mark()

    for label in ("+1s", "🎬 Template", "✖ Cancel"):
        answer = await world.press(other, frame, label)
        assert answer.show_alert and "not your session" in answer.text

    now = tg.message(owner.chat_id, frame.message_id)
    assert now.caption == frame.caption and tg.buttons(now) == tg.buttons(frame)
    assert not [c for c in tg.calls[before:] if c.method.startswith("editMessage")]
    answer = await world.press(owner, now, "+1s")  # the owner still can
    assert not answer.show_alert
    assert "0:03" in (await world.edited(owner, "editMessageMedia", frame)).caption


async def test_music_then_add_to_clip(world: TelegramWorld) -> None:
    tg = world.telegram
    mia = world.user("Mia")
    frame = await world.open_frame(mia, "1.5")
    await world.press(mia, frame, "🎵 Music")
    frame = await world.edited(mia, "editMessageCaption", frame)
    assert "14 s" in frame.caption or "speech" in frame.caption
    await world.press(mia, frame, "🌙 Lo-fi chill")
    frame = await world.edited(mia, "editMessageCaption", frame)
    assert "5 credits" in frame.caption
    await world.confirm_on(mia, frame)

    song = await world.delivered(mia, "sendAudio")
    assert "Music" in song.caption and "🎬 Add to clip" in tg.buttons(song)
    assert world.replicate.creates(BARK)
    mark = tg.mark()
    await world.press(mia, song, "🎬 Add to clip")
    muxed = (await world.reply_to(mia, "sendVideo", after=mark, timeout=30)).message()
    assert "with music" in muxed.caption
    info = await probe(world.delivered_path(muxed))
    assert info.has_video and info.has_audio and info.duration > 4
    assert world.balance(mia) == 45, "music costs 5, adding it to a clip is free"


async def test_cancel_a_running_job_refunds_it(world: TelegramWorld) -> None:
    tg = world.telegram
    world.replicate.script_next(1, model=VEO, delay=None)  # held until completed or canceled
    carl = world.user("Carl")
    frame = await world.open_frame(carl)
    for label in ("🎬 Template", "Dolly zoom", "Next ➡"):
        await world.press(carl, frame, label)
        frame = await world.edited(carl, "editMessageCaption", frame)
    await world.confirm_on(carl, frame)
    status = await world.status_says(carl, "queued")
    job = await world.wait_job(carl, "running")
    assert world.balance(carl) == 30

    answer = await world.press(carl, status, "✖ Cancel")
    assert answer.show_alert and "20 credits refunded" in answer.text
    canceled = await world.status_says(carl, "canceled")
    assert canceled.message_id == status.message_id and "20 credits refunded" in canceled.text
    assert tg.buttons(canceled) == [], "nothing left to cancel"
    assert world.balance(carl) == 50
    prediction = world.replicate.predictions[job["prediction_id"]]
    await world.replicate.wait_for(lambda: prediction.status == "canceled")
    assert not tg.calls_of("sendVideo", chat_id=carl.chat_id)
    again = await (await carl.press_data(status, f"lz:job.cancel:{job['id']}")).wait_answer()
    assert "already finished" in again.text and world.balance(carl) == 50, "refunded once"


async def test_a_failing_model_refunds_and_says_why(world: TelegramWorld) -> None:
    world.replicate.script_next(1, model=VEO, outcome="failed", error="CUDA error: device lost")
    dina = world.user("Dina")
    frame = await world.open_frame(dina)
    for label in ("🎬 Template", "Orbit 360", "Next ➡"):
        await world.press(dina, frame, label)
        frame = await world.edited(dina, "editMessageCaption", frame)
    await world.confirm_on(dina, frame)
    failed = await world.status_says(dina, "did not work")
    assert "model ran into an error" in failed.text and "20 credits refunded" in failed.text
    assert "Traceback" not in failed.text
    assert world.balance(dina) == 50
    assert not world.telegram.calls_of("sendVideo", chat_id=dina.chat_id)


async def test_a_flood_of_429_on_status_edits_still_delivers_the_clip_once(world: TelegramWorld) -> None:
    tg = world.telegram
    world.replicate.script_next(1, model=VEO, delay=None)  # finishes when the test says so
    erik = world.user("Erik")
    frame = await world.open_frame(erik)
    for label in ("🎬 Template", "Slow pan", "Next ➡"):
        await world.press(erik, frame, label)
        frame = await world.edited(erik, "editMessageCaption", frame)
    tg.rate_limit("editMessageText", retry_after=1, chat_id=erik.chat_id)
    await world.confirm_on(erik, frame)

    def refused() -> list[Call]:
        return [c for c in tg.calls_of("editMessageText", chat_id=erik.chat_id) if c.status == 429]

    await tg.wait_until(lambda: len(refused()) >= 2, timeout=15)
    job = await world.wait_job(erik, "running")
    await world.replicate.complete(job["prediction_id"])
    await world.delivered(erik)
    gaps = [b.at - a.at for a, b in zip(refused(), refused()[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), f"retry_after honoured: {gaps}"
    tg.clear_faults()
    await world.status_says(erik, "sent below")  # the last word still lands
    job = await world.wait_job(erik, "delivered")
    assert len(tg.calls_of("sendVideo", chat_id=erik.chat_id)) == 1
    assert job["delivered_message_id"] is not None


async def test_bad_input_is_answered_with_the_catalogue_text(world: TelegramWorld) -> None:
    tg = world.telegram
    fay = world.user("Fay")
    text_file = b"this is a shopping list, not a video\n" * 20

    async def answer_to(send: object) -> str:
        mark = tg.mark()
        await send  # type: ignore[misc]
        return (await world.reply_to(fay, "sendMessage", after=mark)).message().text

    mark = tg.mark()
    await fay.send_document(text_file, file_name="clip.mp4", mime_type="video/mp4")
    answer = (await world.reply_to(fay, "sendMessage", after=mark)).message()
    # Fay's first message: the welcome comes first (as on Discord), above the answer to it.
    assert answer.text.startswith("👋") and "isn't a video" in answer.text.rsplit("\n\n", 1)[1]
    assert len([c for c in tg.calls[mark:] if c.params.get("chat_id") == fay.chat_id
                and c.method == "sendMessage"]) == 1  # one message, not two
    said = await answer_to(fay.send_document(text_file, file_name="notes.txt", mime_type="text/plain"))
    assert "isn't a video" in said
    said = await answer_to(fay.send_video(b"", width=0, height=0, duration=0))
    assert "empty (0 bytes)" in said
    said = await answer_to(fay.send_video(world.media.clip, caption="banana o'clock"))
    assert "isn't a time I understand" in said
    await world.reply_to(fay, "sendPhoto")  # …and the contact sheet to pick from instead
    said = await answer_to(fay.send_video(world.media.clip, caption="0:09"))
    assert "outside the video" in said
    said = await answer_to(fay.send_document(b"\xff\xd8 not really", file_name="me.jpg", mime_type="image/jpeg"))
    assert "isn't a picture" in said

    mark = tg.mark()
    big = world.home / "big.mp4"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    await fay.send_video(big, width=1920, height=1080, duration=60)
    said = (await world.reply_to(fay, "sendMessage", after=mark)).message().text
    assert "21.0 MB" in said and "up to 20 MB" in said
    assert not [c for c in tg.calls[mark:] if c.method == "getFile"], "refused before getFile"
    assert world.balance(fay) == 50, "nothing charged"


async def test_forged_or_stale_buttons_get_an_alert(world: TelegramWorld) -> None:
    gus = world.user("Gus")
    frame = await world.open_frame(gus)
    forged = await (await gus.press_data(frame, "lz:st.scrub:zzzzzzzz:10")).wait_answer()
    assert forged.show_alert and "expired" in forged.text
    garbage = await (await gus.press_data(frame, "x" * 64)).wait_answer()
    assert garbage.show_alert and "not valid" in garbage.text
    assert world.telegram.message(gus.chat_id, frame.message_id).caption == frame.caption


async def test_account_commands_and_language(world: TelegramWorld) -> None:
    tg = world.telegram
    hana = world.user("Hana")
    assert "/balance" in (await world.say(hana, "/help")).text
    assert "No jobs yet" in (await world.say(hana, "/jobs")).text
    assert "/job ab12cd34" in (await world.say(hana, "/job")).text
    assert "can't find that job" in (await world.say(hana, "/job nosuchjob")).text

    choose = await world.say(hana, "/lang")
    assert tg.buttons(choose) == ["English", "한국어"]
    mark = tg.mark()
    await world.press(hana, choose, "한국어")
    assert "언어" in (await world.reply_to(hana, "sendMessage", after=mark)).message().text
    assert "잔액" in (await world.say(hana, "/balance")).text

    jun = world.user("Jun", language_code="ko")
    assert "환영" in (await world.say(jun, "/start")).text
    menu = tg.commands
    assert any(key[1] == "ko" for key in menu) and any(key[1] == "" for key in menu)


async def test_admin_commands_for_admins_only(world: TelegramWorld) -> None:
    group = world.group("Admins and friends")
    boss = world.user("Boss", user_id=ADMIN_ID, chat=group)
    kim = world.user("Kim", chat=group, username="kim_k")
    await world.say(kim, "/start@lokiz_test_bot")
    hello = await kim.send_text("hi all")

    granted = await world.say(boss, "/grant 15 birthday", reply_to=hello)
    assert "Granted 15 credits" in granted.text and "65" in granted.text
    assert world.balance(kim) == 65
    assert "Revoked 5" in (await world.say(boss, "/revoke @kim_k 5")).text
    credits = await world.say(boss, f"/credits {kim.id}")
    assert "60 credits" in credits.text and "grant" in credits.text
    assert "Users:" in (await world.say(boss, "/stats")).text

    refused = await world.say(kim, f"/grant {kim.id} 1000")
    assert "admins only" in refused.text
    assert world.balance(kim) == 60
    logged = world.query("SELECT allowed FROM admin_log WHERE actor = ?", (str(kim.id),))
    assert [row["allowed"] for row in logged] == [0]


async def test_again_resends_by_file_id_without_uploading(world: TelegramWorld) -> None:
    tg = world.telegram
    lea = world.user("Lea")
    frame = await world.open_frame(lea)
    for label in ("🎬 Template", "Neon city", "4s", "Next ➡"):
        await world.press(lea, frame, label)
        frame = await world.edited(lea, "editMessageCaption", frame)
    await world.confirm_on(lea, frame)
    first = await world.delivered(lea)
    answer = await world.press(lea, first, "🔁 Again")
    assert "Again" in answer.text
    second = await world.delivered(lea)
    resent = tg.calls_of("sendVideo", chat_id=lea.chat_id)[-1].params["video"]
    assert not str(resent).startswith("attach://"), "the same bytes go by file id"
    assert second.video.file_id == first.video.file_id == resent
    assert world.balance(lea) == 10
    like = await world.press(lea, second, "👍")
    assert "Liked" in like.text
    await tg.wait_until(lambda: "👍 1" in tg.buttons(tg.message(lea.chat_id, second.message_id)))


async def test_again_pressed_twice_makes_one_job_and_the_changed_buttons_make_another(
    world: TelegramWorld,
) -> None:
    tg = world.telegram
    olga = world.user("Olga")
    frame = await world.open_frame(olga, "1.5")
    for label in ("🎵 Music", "🌙 Lo-fi chill"):
        await world.press(olga, frame, label)
        frame = await world.edited(olga, "editMessageCaption", frame)
    await world.confirm_on(olga, frame)
    song = await world.delivered(olga, "sendAudio")
    await world.wait_job(olga, "delivered")
    presses = [await olga.press(song, "🔁 Again"), await olga.press(song, "🔁 Again")]
    answers = [await press.wait_answer(timeout=15) for press in presses]
    assert sum("Already" in answer.text for answer in answers) == 1, [a.text for a in answers]
    await tg.wait_until(lambda: "🔁 Again (1 started)" in tg.buttons(tg.message(olga.chat_id, song.message_id)))
    await world.wait_job(olga, "delivered")
    assert len(world.jobs(olga)) == 2 and world.balance(olga) == 40
    # The buttons changed: a deliberate press there is a new job, charged once more.
    answer = await world.press(olga, song, "🔁 Again (1 started)")
    assert "Again: job" in answer.text
    await tg.wait_until(lambda: "🔁 Again (2 started)" in tg.buttons(tg.message(olga.chat_id, song.message_id)))
    await world.wait_job(olga, "delivered")
    assert len(world.jobs(olga)) == 3 and world.balance(olga) == 35


async def test_a_user_who_blocked_the_bot_does_not_stop_the_engine(world: TelegramWorld) -> None:
    world.replicate.script_next(1, model=VEO, delay=None)
    max_ = world.user("Max")
    frame = await world.open_frame(max_)
    for label in ("🎬 Template", "VHS memory", "Next ➡"):
        await world.press(max_, frame, label)
        frame = await world.edited(max_, "editMessageCaption", frame)
    await world.confirm_on(max_, frame)
    job = await world.wait_job(max_, "running")
    await max_.block_bot()
    await world.replicate.complete(job["prediction_id"])
    ended = await world.wait_job(max_, "failed")
    assert ended["error_class"] == "undeliverable" and world.balance(max_) == 50

    ned = world.user("Ned")  # everyone else is still served
    assert "Welcome" in (await world.say(ned, "/start")).text


async def test_too_many_updates_get_a_slow_down_answer_not_silence(world: TelegramWorld) -> None:
    tg = world.telegram
    ola = world.user("Ola")
    mark = tg.mark()
    for _ in range(15):
        await ola.send_text("/balance")
    await tg.wait_until(lambda: len([c for c in tg.calls[mark:] if c.method == "sendMessage"
                                     and c.params.get("chat_id") == ola.chat_id and c.ok]) == 15,
                        timeout=30)
    texts = [c.params["text"] for c in tg.calls[mark:]
             if c.method == "sendMessage" and c.params.get("chat_id") == ola.chat_id]
    assert any("Slow down" in text for text in texts)
    assert any("Balance" in text for text in texts)


async def test_http_server_binds_a_free_port_and_is_healthy(world: TelegramWorld) -> None:
    port = world.http_port()
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_every_kind_of_video_opens_the_studio(world: TelegramWorld) -> None:
    tg = world.telegram
    vera = world.user("Vera")
    for kind in ("video_note", "animation", "document"):
        mark = tg.mark()
        await vera.send_video(world.media.clip, as_=kind, caption=None if kind == "video_note" else "1")
        shown = (await world.reply_to(vera, "sendPhoto", after=mark)).message()
        assert "Pick a moment" in shown.caption or "Frame at 0:01" in shown.caption, kind


async def test_glitch_from_a_frame_with_a_sent_clip(world: TelegramWorld) -> None:
    tg = world.telegram
    walt = world.user("Walt")
    frame = await world.open_frame(walt)
    await world.press(walt, frame, "🌀 Glitch")
    asked = await world.edited(walt, "editMessageCaption", frame)
    assert "send (or forward) the clip" in asked.caption
    mark = tg.mark()
    await walt.send_video(world.media.result)
    modes = (await world.reply_to(walt, "sendPhoto", after=mark)).message()
    await world.press(walt, modes, "🕺 Animate")
    modes = await world.edited(walt, "editMessageCaption", modes)
    await world.confirm_on(walt, modes)
    clip = await world.delivered(walt)
    assert "Glitch · Animate" in clip.caption and not clip.caption_entities, "no mention in private"
    assert world.balance(walt) == 20


async def test_a_custom_prompt_is_typed_after_the_question(world: TelegramWorld) -> None:
    tg = world.telegram
    xena = world.user("Xena")
    frame = await world.open_frame(xena)
    await world.press(xena, frame, "🎬 Template")
    frame = await world.edited(xena, "editMessageCaption", frame)
    await world.press(xena, frame, "✍️ Custom prompt")
    asked = await world.edited(xena, "editMessageCaption", frame)
    assert "Type your prompt" in asked.caption
    mark = tg.mark()
    await xena.send_text("the camera flies through the scene at sunset")
    options = (await world.reply_to(xena, "sendPhoto", after=mark)).message()
    assert "Custom prompt" in options.caption
    await world.press(xena, options, "Next ➡")
    confirm = await world.edited(xena, "editMessageCaption", options)
    assert "sunset" in confirm.caption


async def test_use_my_last_frame_in_a_group_turns_the_question_into_a_photo(world: TelegramWorld) -> None:
    tg = world.telegram
    group = world.group("Frames")
    yuri_private = world.user("Yuri")
    await world.open_frame(yuri_private, "0:01")
    sharer = world.user("Zoe", chat=group)
    yuri = world.user("Yuri", user_id=yuri_private.id, chat=group)
    shared = await sharer.send_video(world.media.clip)
    ask = await world.say(yuri, "/remix", reply_to=shared)
    assert "🖼 Use my last frame" in tg.buttons(ask)
    mark = tg.mark()
    await world.press(yuri, ask, "🖼 Use my last frame")
    modes = (await world.reply_to(yuri, "sendPhoto", after=mark)).message()
    assert {"🕺 Animate", "🔁 Replace"} <= set(tg.buttons(modes))
    await world.press(yuri, modes, "🕺 Animate")
    confirmed = await world.edited(yuri, "editMessageCaption", modes)
    assert "30 credits" in confirmed.caption

    lonely = await world.say(yuri, "/glitch")
    assert "Reply /glitch to a message that has a video" in lonely.text


async def test_an_unexpected_failure_is_answered_not_silent(world: TelegramWorld) -> None:
    tg = world.telegram
    ivy = world.user("Ivy")
    tg.fail_next("getFile", code=500, chat_id=None)
    mark = tg.mark()
    await ivy.send_video(world.media.clip, caption="1")
    said = (await world.reply_to(ivy, "sendMessage", after=mark)).message()
    assert "Something went wrong" in said.text
    assert "Traceback" in world.bot.log() and world.bot.alive
    assert "Frame at 0:01" in (await world.open_frame(ivy, "1")).caption


async def test_group_chatter_the_bot_can_see_is_left_alone(world: TelegramWorld) -> None:
    tg = world.telegram
    lounge = tg.group(-1_009_999_000_001, "Lounge", bot_is_admin=True)  # the bot sees everything
    quinn = world.user("Quinn", chat=lounge)
    shared = await quinn.send_video(world.media.clip, caption="look at this 0:02")
    for n in range(15):
        await quinn.send_text(f"chatting away {n}", reply_to=shared if n == 0 else None)
    balance = await world.say(quinn, "/balance")
    assert "Balance" in balance.text, "not rate-limited by messages that were not for the bot"
    to_lounge = [c for c in tg.calls if c.params.get("chat_id") == lounge.id and c.method != "getFile"]
    # Quinn's first word to the bot: one message, the welcome above the balance asked for.
    assert [c.method for c in to_lounge] == ["sendMessage"]
    assert balance.text.startswith("👋") and "\n\n💳 Balance: 50 credits.\nPrices:" in balance.text
