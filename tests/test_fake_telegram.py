"""The fake Telegram server speaks the Bot API the way real aiogram expects it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fakes.telegram import ChatUser, FakeTimeout, TelegramFake


def png(width: int, height: int, shade: int = 0) -> bytes:
    """A real (tiny) PNG image, so the fake can read its size like Telegram does."""
    row = b"\x00" + bytes([shade, shade, shade]) * width
    raw = row * height

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


STUDIO_KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [
            InlineKeyboardButton(text="Template", callback_data="act:template"),
            InlineKeyboardButton(text="Glitch", callback_data="act:glitch"),
        ],
        [InlineKeyboardButton(text="Docs", url="https://example.com/help")],
    ]
)


@pytest.fixture
async def fake() -> AsyncIterator[TelegramFake]:
    async with TelegramFake() as server:
        yield server


@pytest.fixture
async def bot(fake: TelegramFake) -> AsyncIterator[Bot]:
    client: Bot = fake.make_bot()
    yield client
    await client.session.close()


@contextlib.asynccontextmanager
async def polling(fake: TelegramFake, dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=10))
    await fake.wait_for("getMe", consume=False)
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


async def test_text_from_a_user_is_echoed_back_over_long_polling(
    fake: TelegramFake, bot: Bot
) -> None:
    dp = Dispatcher()

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    alice = ChatUser(fake, 1001, "Alice", username="alice")
    async with polling(fake, dp, bot):
        started = time.monotonic()
        await alice.send_text("hello there")
        call = await fake.wait_for("sendMessage", chat_id=alice.chat_id)
        assert time.monotonic() - started < 2, (
            "the long poll must return as soon as an update is queued"
        )
    assert call.params["text"] == "hello there"
    reply = alice.last_bot_message()
    assert reply is not None and reply.text == "hello there"
    assert reply.from_user is not None and reply.from_user.id == bot.id


async def test_bot_downloads_the_video_a_user_sent_byte_for_byte(
    fake: TelegramFake, bot: Bot
) -> None:
    clip = bytes(range(256)) * 4000  # ~1 MB of not-really-video
    dp = Dispatcher()

    @dp.message(F.video)
    async def on_video(message: Message, bot: Bot) -> None:
        assert message.video is not None
        data = await bot.download(message.video)
        assert data is not None
        await message.reply(hashlib.sha256(data.read()).hexdigest())

    bob = ChatUser(fake, 1002, "Bob")
    async with polling(fake, dp, bot):
        sent = await bob.send_video(clip, caption="0:05.5", width=1280, height=720, duration=12)
        call = await fake.wait_for("sendMessage")
    assert call.params["text"] == hashlib.sha256(clip).hexdigest()
    assert [c.method for c in fake.calls if c.method == "getFile"] == ["getFile"]
    reply = bob.last_bot_message()
    assert reply is not None and reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == sent.message_id
    assert reply.reply_to_message.video is not None
    assert reply.reply_to_message.video.duration == 12


async def test_pressing_a_button_by_label_reaches_the_bot_and_is_answered(
    fake: TelegramFake, bot: Bot
) -> None:
    router = Router()

    @router.message(F.text == "/start")
    async def start(message: Message) -> None:
        await message.answer_photo(
            BufferedInputFile(png(640, 360), "frame.png"),
            caption="Frame at 0:05.5",
            reply_markup=STUDIO_KEYBOARD,
        )

    @router.callback_query(F.data.startswith("act:"))
    async def act(query: CallbackQuery) -> None:
        await query.answer(f"picked {query.data}", show_alert=True)

    dp = Dispatcher()
    dp.include_router(router)
    carol = ChatUser(fake, 1003, "Carol")
    async with polling(fake, dp, bot):
        await carol.send_text("/start")
        await fake.wait_for("sendPhoto")
        frame = carol.last_bot_message()
        assert frame is not None and frame.photo is not None
        assert fake.buttons(frame) == ["Template", "Glitch", "Docs"]
        press = await carol.press(frame, "Glitch")
        answer = await press.wait_answer()
    assert answer.text == "picked act:glitch"
    assert answer.show_alert is True
    assert frame.photo[-1].width == 640


async def test_pressing_a_label_that_is_not_there_lists_the_available_ones(
    fake: TelegramFake, bot: Bot
) -> None:
    dave = ChatUser(fake, 1004, "Dave")
    await dave.send_text("hi")
    sent = await bot.send_message(dave.chat_id, "Pick one", reply_markup=STUDIO_KEYBOARD)
    with pytest.raises(LookupError, match=r"available: \['Template', 'Glitch', 'Docs'\]"):
        await dave.press(sent, "Music")
    with pytest.raises(LookupError, match="no callback_data"):
        await dave.press(sent, "Docs")
    forged = await dave.press_data(sent.message_id, "act:../../etc")
    assert fake.pending_updates[-1]["callback_query"]["data"] == forged.data


async def test_edit_message_media_replaces_the_photo_in_place(fake: TelegramFake, bot: Bot) -> None:
    erin = ChatUser(fake, 1005, "Erin")
    await erin.send_text("/start")
    first = await bot.send_photo(
        erin.chat_id, BufferedInputFile(png(64, 48), "a.png"), reply_markup=STUDIO_KEYBOARD
    )
    assert first.photo is not None
    edited = await bot.edit_message_media(
        chat_id=erin.chat_id,
        message_id=first.message_id,
        media=InputMediaPhoto(
            media=BufferedInputFile(png(32, 24, shade=200), "b.png"), caption="0:06.5"
        ),
        reply_markup=STUDIO_KEYBOARD,
    )
    assert isinstance(edited, Message) and edited.photo is not None
    current = fake.message(erin.chat_id, first.message_id)
    assert current.photo[-1].file_unique_id != first.photo[-1].file_unique_id
    assert (current.photo[-1].width, current.caption) == (32, "0:06.5")
    assert fake.file_bytes(current.photo[-1].file_id) == png(32, 24, shade=200)
    assert fake.buttons(current) == ["Template", "Glitch", "Docs"]
    assert len(fake.bot_messages(erin.chat_id)) == 1

    # As on Telegram, an edit without reply_markup drops the keyboard.
    await bot.edit_message_caption(chat_id=erin.chat_id, message_id=first.message_id, caption="x")
    assert fake.buttons(first) == []


async def test_an_edit_that_changes_nothing_raises_message_is_not_modified(
    fake: TelegramFake, bot: Bot
) -> None:
    frank = ChatUser(fake, 1006, "Frank")
    await frank.send_text("/start")
    status = await bot.send_message(frank.chat_id, "Queued (position 2)")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            chat_id=frank.chat_id, message_id=status.message_id, text="Queued (position 2)"
        )
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(chat_id=frank.chat_id, message_id=999, text="Generating")
    await bot.edit_message_text(
        chat_id=frank.chat_id, message_id=status.message_id, text="Generating"
    )
    last = frank.last_bot_message()
    assert last is not None and last.text == "Generating" and last.edit_date is not None


async def test_flood_control_raises_retry_after_then_the_next_call_succeeds(
    fake: TelegramFake, bot: Bot
) -> None:
    gina = ChatUser(fake, 1007, "Gina")
    await gina.send_text("/start")
    fake.fail_next("sendMessage", code=429, retry_after=7)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(gina.chat_id, "Your clip is ready")
    assert caught.value.retry_after == 7
    await bot.send_message(gina.chat_id, "Your clip is ready")
    assert [c.status for c in fake.calls_of("sendMessage")] == [429, 200]

    fake.rate_limit("editMessageText", retry_after=3)
    for _ in range(2):
        with pytest.raises(TelegramRetryAfter):
            await bot.edit_message_text(chat_id=gina.chat_id, message_id=2, text="x")
    fake.clear_faults()

    fake.fail_next("sendChatAction", code=502)
    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_chat_action(gina.chat_id, "upload_video")


async def test_get_file_refuses_files_over_20_mb_unless_the_server_is_local(
    fake: TelegramFake, bot: Bot
) -> None:
    big = b"\x00" * (20 * 1024 * 1024 + 1)
    hana = ChatUser(fake, 1008, "Hana")
    sent = await hana.send_video(big, width=1920, height=1080, duration=60)
    assert sent.video is not None and sent.video.file_size == len(big)
    with pytest.raises(TelegramBadRequest, match="file is too big"):
        await bot.get_file(sent.video.file_id)

    async with TelegramFake(local=True) as local:
        local_bot = local.make_bot()
        try:
            ivan = ChatUser(local, 1009, "Ivan")
            clip = await ivan.send_video(big, as_="document", file_name="long.mp4")
            assert clip.document is not None
            info = await local_bot.get_file(clip.document.file_id)
            assert info.file_path is not None and info.file_path.startswith("/")
            data = await local_bot.download(clip.document)
            assert data is not None and len(data.read()) == len(big)
        finally:
            await local_bot.session.close()


async def test_uploads_over_the_limit_answer_413(bot: Bot) -> None:
    async with TelegramFake(upload_limit=1024 * 1024) as small:
        small_bot = small.make_bot()
        try:
            jo = ChatUser(small, 1010, "Jo")
            await jo.send_text("/start")
            with pytest.raises(TelegramEntityTooLarge):
                await small_bot.send_video(
                    jo.chat_id, BufferedInputFile(b"\x01" * (2 * 1024 * 1024), "out.mp4")
                )
            assert small.bot_messages(jo.chat_id) == []
        finally:
            await small_bot.session.close()


async def test_blocked_users_and_unstarted_chats_answer_403(fake: TelegramFake, bot: Bot) -> None:
    kim = ChatUser(fake, 1011, "Kim")
    with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
        await bot.send_message(kim.chat_id, "hello?")
    await kim.send_text("/start")
    await kim.block_bot()
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(kim.chat_id, "Your clip is ready")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(424242, "nobody")


async def test_telegram_parses_html_and_rejects_broken_markup(fake: TelegramFake, bot: Bot) -> None:
    lee = ChatUser(fake, 1012, "Lee")
    await lee.send_text("/start")
    ok = await bot.send_message(lee.chat_id, "<b>20</b> credits &amp; more", parse_mode="HTML")
    assert ok.text == "20 credits & more"
    assert ok.entities is not None and ok.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(lee.chat_id, "a <tag> from user input", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="reserved"):
        await bot.send_message(lee.chat_id, "Balance: 5.5", parse_mode="MarkdownV2")
    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="y" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(lee.chat_id, "pick", reply_markup=too_long)


async def test_group_privacy_mode_hides_chatter_but_not_commands_or_replies(
    fake: TelegramFake, bot: Bot
) -> None:
    dp = Dispatcher()
    seen: list[str] = []

    @dp.message()
    async def remember(message: Message) -> None:
        seen.append(message.text or "")
        if message.text == "/glitch":
            await message.reply("Send me your image")

    club = fake.group(-1001234567890, "Remix club")
    mia = ChatUser(fake, 1013, "Mia", chat=club)
    ned = ChatUser(fake, 1014, "Ned", chat=club)
    async with polling(fake, dp, bot):
        clip = await mia.send_video(b"clip-bytes", width=720, height=1280, duration=8)
        await mia.send_text("look at this")
        await ned.send_text("/glitch", reply_to=clip)
        await fake.wait_for("sendMessage", chat_id=club.id)
        prompt = fake.last_bot_message(club.id)
        await ned.reply_text(prompt, "here it is")
        await fake.wait_until(lambda: "here it is" in seen)
    assert seen == ["/glitch", "here it is"]
    assert [reason for _, reason in fake.dropped_updates] == [
        "privacy mode: not a command, mention or reply to the bot"
    ] * 2


async def test_callback_answered_twice_is_too_old(fake: TelegramFake, bot: Bot) -> None:
    olga = ChatUser(fake, 1015, "Olga")
    await olga.send_text("/start")
    sent = await bot.send_message(olga.chat_id, "Pick", reply_markup=STUDIO_KEYBOARD)
    press = await olga.press(sent, "Template")
    assert await bot.answer_callback_query(press.id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(press.id)


async def test_wait_for_times_out_with_a_readable_digest(fake: TelegramFake, bot: Bot) -> None:
    await bot.get_me()
    with pytest.raises(FakeTimeout, match="getMe"):
        await fake.wait_for("sendVideo", timeout=0.05)


async def test_webhook_mode_posts_updates_with_the_secret_and_runs_the_reply(
    fake: TelegramFake, bot: Bot
) -> None:
    dp = Dispatcher()
    received: list[dict[str, Any]] = []

    @dp.message(F.text == "/ping")
    async def ping(message: Message) -> Any:
        received.append({"text": message.text})
        return message.answer("pong")  # returned, not awaited: sent in the webhook reply

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(
        app, path="/tg"
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{site.port}/tg", secret_token="s3cret")
        with pytest.raises(Exception, match="webhook is active"):
            await bot.get_updates()
        pia = ChatUser(fake, 1016, "Pia")
        await pia.send_text("/ping")
        call = await fake.wait_for("sendMessage")
        assert call.via_webhook_reply and call.params["text"] == "pong"
        assert received == [{"text": "/ping"}]
        assert fake.webhook_deliveries[-1].status == 200
        info = await bot.get_webhook_info()
        assert info.pending_update_count == 0
        await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


async def test_inline_mode_queries_and_answers_are_checked_like_telegram() -> None:
    from aiogram.types import InlineQueryResultCachedVideo

    async with TelegramFake(inline_mode=True, inline_ttl=10.0) as fake:
        client: Bot = fake.make_bot()
        try:
            assert (await client.get_me()).supports_inline_queries
            rita = ChatUser(fake, 1030, "Rita")
            await rita.send_text("/start")
            video = await client.send_video(rita.chat_id, BufferedInputFile(b"\x00" * 64, "v.mp4"))
            assert video.video is not None
            query = await rita.inline_query("cats")
            update = fake.pending_updates[-1]["inline_query"]
            assert update["query"] == "cats" and "chat" not in update, "an inline query has no chat"

            def cached(result_id: str, file_id: str, title: str = "A clip") -> InlineQueryResultCachedVideo:
                return InlineQueryResultCachedVideo(id=result_id, video_file_id=file_id, title=title)

            with pytest.raises(TelegramBadRequest, match="RESULT_ID_DUPLICATE"):
                await client.answer_inline_query(query.id, [cached("1", video.video.file_id)] * 2)
            with pytest.raises(TelegramBadRequest, match="RESULTS_TOO_MUCH"):
                await client.answer_inline_query(
                    query.id, [cached(str(n), video.video.file_id) for n in range(51)])
            with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
                await client.answer_inline_query(query.id, [cached("1", "BAAC-unknown")])
            assert await client.answer_inline_query(
                query.id, [cached("1", video.video.file_id)], cache_time=7, is_personal=True)
            answer = await query.wait_answer()
            assert (answer.cache_time, answer.is_personal) == (7, True)
            with pytest.raises(TelegramBadRequest, match="query is too old"):
                await client.answer_inline_query(query.id, [])
            shared = await rita.choose_inline_result(answer, "1")
            assert shared.video.file_id == video.video.file_id and shared.via_bot is not None
        finally:
            await client.session.close()

    async with TelegramFake() as off:
        with pytest.raises(ValueError, match="setinline"):
            await ChatUser(off, 1031, "Sam").inline_query("")


async def test_an_inline_answers_button_is_checked_and_kept_like_telegram() -> None:
    from aiogram.types import InlineQueryResultsButton, WebAppInfo

    async with TelegramFake(inline_mode=True) as fake:
        client: Bot = fake.make_bot()
        try:
            query = await ChatUser(fake, 1032, "Uma").inline_query("")
            with pytest.raises(TelegramBadRequest, match="START_PARAM_INVALID"):
                await client.answer_inline_query(
                    query.id, [], button=InlineQueryResultsButton(text="Go", start_parameter="no spaces"))
            with pytest.raises(TelegramBadRequest, match="exactly one optional field"):
                await client.answer_inline_query(query.id, [], button=InlineQueryResultsButton(
                    text="Go", start_parameter="go", web_app=WebAppInfo(url="https://example.org")))
            with pytest.raises(TelegramBadRequest, match="SWITCH_PM_TEXT_EMPTY"):
                await client.answer_inline_query(
                    query.id, [], button=InlineQueryResultsButton(text=" ", start_parameter="go"))
            assert await client.answer_inline_query(
                query.id, [], cache_time=2, is_personal=True,
                button=InlineQueryResultsButton(text="Slow down", start_parameter="slow"))
            answer = await query.wait_answer()
            assert answer.button == {"text": "Slow down", "start_parameter": "slow"}
            assert (answer.results, answer.cache_time) == ([], 2)
        finally:
            await client.session.close()


async def test_parallel_webhooks_post_many_chats_at_once_but_one_at_a_time_per_chat() -> None:
    held: dict[str, asyncio.Future[None]] = {}  # text -> released when set
    arrived: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        text = (await request.json())["message"]["text"]
        arrived.append(text)
        held[text] = asyncio.get_running_loop().create_future()
        await held[text]
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/tg", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with TelegramFake(parallel_webhooks=True) as fake:
        bot = fake.make_bot()
        try:
            await bot.set_webhook(f"http://127.0.0.1:{site.port}/tg", max_connections=2)
            ann, ben, cay = (ChatUser(fake, 1100 + i, name) for i, name in enumerate(("Ann", "Ben", "Cay")))
            for user, text in ((ann, "a1"), (ann, "a2"), (ben, "b1"), (cay, "c1")):
                await user.send_text(text)
            await fake.wait_until(lambda: len(arrived) == 2, timeout=5)
            await asyncio.sleep(0.2)
            # Two connections at most; Ann's second waits for her first, so Ben's comes along.
            assert arrived == ["a1", "b1"]
            held["a1"].set_result(None)
            await fake.wait_until(lambda: len(arrived) == 3, timeout=5)
            held["b1"].set_result(None)
            await fake.wait_until(lambda: len(arrived) == 4, timeout=5)
            assert sorted(arrived[2:]) == ["a2", "c1"]
            for text in ("a2", "c1"):
                held[text].set_result(None)
            await fake.wait_until(lambda: not fake.pending_updates, timeout=5)
            assert [d.status for d in fake.webhook_deliveries] == [200] * 4
        finally:
            await bot.session.close()
            await runner.cleanup()
