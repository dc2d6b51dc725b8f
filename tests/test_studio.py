"""The studio flow in the core, as both adapters drive it: replies, not platforms."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import build_services
from core.actions import SeekFrame
from core.catalogue import GLITCH_REPLACE, MUSIC, TEMPLATE
from core.desk import (
    AccountAsked,
    AdminCommand,
    Alert,
    AskText,
    ChatContext,
    ClipShared,
    Edit,
    Event,
    LanguageChosen,
    PhotoSent,
    Pressed,
    Reply,
    Send,
    SendMedia,
    Started,
    Target,
    TextTyped,
    VideoSent,
)
from core.ratelimit import UpdateRateLimiter
from core.screens import Screen
from core.settings import load_settings
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier
from tests.welcome import WELCOME, after_welcome


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from tests.media_factory import make_av_video

    return make_av_video(tmp_path_factory.mktemp("studio") / "six.mp4", seconds=6.0)


@pytest.fixture
async def services(tmp_path: Path, av_video: Path):
    settings = load_settings(
        None, database_url=f"sqlite:///{tmp_path / 'studio.db'}", media_dir=tmp_path / "media",
        admin_ids="telegram:900", starter_credits=50,
    )
    built = await build_services(settings)
    built.engine.backend = ScriptedBackend(output_file=av_video)
    built.engine.notifiers["telegram"] = RecordingNotifier()
    built.engine._pacer._interval = 0.01
    built.desk.rate_limiter = UpdateRateLimiter(burst=1000)  # these tests press fast on purpose
    await built.engine.start()
    yield built
    await built.close()


def ctx(user: str = "1", chat: str = "1", kind: str = "private", message: str | None = "10",
        lang: str | None = "en", username: str | None = None) -> ChatContext:
    return ChatContext("telegram", user, chat, kind, display_name=f"user{user}", username=username,
                       language_code=lang, message_id=message)


def upload(path: Path, tmp: Path) -> Path:
    """The adapter downloads into a temp file the studio then owns."""
    copy = tmp / f"upload-{time.monotonic_ns()}{path.suffix}"
    shutil.copyfile(path, copy)
    return copy


class Local:
    """A file already on disk, as the Desk receives one (`Incoming`)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def fetch(self) -> Path:
        return self.path


class Drive:
    """Typed events into the Desk, as an adapter would send them. A first contact's
    welcome comes first in its reply (alone, or on top of a plain answer); these tests
    look at what follows it."""

    def __init__(self, services) -> None:
        self.desk = services.desk

    async def answer(self, event: Event) -> Reply:
        reply = await self.desk.answer(event)
        first = reply.outs[0] if reply.outs else None
        if not isinstance(event, Started) and isinstance(first, Send) \
                and first.screen.text.startswith(WELCOME):
            rest = after_welcome(first.screen.text)
            if rest:  # the welcome on top of the answer: the answer
                reply.outs[0] = replace(first, screen=replace(first.screen, text=rest))
            else:  # the welcome alone, first
                reply.outs.pop(0)
        return reply

    async def video(self, who, path, caption=None):
        return await self.answer(VideoSent(who, Local(path), caption))

    async def photo(self, who, path):
        return await self.answer(PhotoSent(who, Local(path)))

    async def text(self, who, text):
        return await self.answer(TextTyped(who, text))

    async def press(self, who, data):
        return await self.answer(Pressed(who, data))

    async def glitch_with_clip(self, who, path, reply_to=None, start=None):
        return await self.answer(ClipShared(who, Local(path), reply_to, start))

    async def bind_message(self, session_id, message_id):
        await self.desk.bind_message(session_id, message_id)

    async def start(self, who):
        return await self.answer(Started(who))

    user = start

    async def set_language(self, who, code):
        return await self.answer(LanguageChosen(who, code))

    async def admin(self, who, command, args, replied=None):
        return await self.answer(AdminCommand(who, command, tuple(args), replied))

    async def balance(self, who):
        return await self.answer(AccountAsked(who, "balance"))

    async def jobs_list(self, who):
        return await self.answer(AccountAsked(who, "jobs"))


def drive(services) -> Drive:
    return Drive(services)


def only(reply: Reply, kind: type):
    found = [out for out in reply.outs if isinstance(out, kind)]
    assert len(found) == 1, reply.outs
    return found[0]


def button(screen: Screen, label_part: str) -> str:
    for candidate in screen.all_buttons():
        if label_part in candidate.label:
            return candidate.data
    raise AssertionError(f"no button with {label_part!r} in {[b.label for b in screen.all_buttons()]}")


async def open_frame(services, tmp_path, video, caption="0:02.5", who=None) -> tuple[Send, str]:
    who = who or ctx()
    sent = only(await drive(services).video(who, upload(video, tmp_path), caption), Send)
    await drive(services).bind_message(sent.session_id, "500")
    return sent, sent.session_id


async def test_video_with_a_time_shows_that_frame_with_scrub_and_actions(services, tmp_path, video):
    sent, _ = await open_frame(services, tmp_path, video)
    assert sent.screen.image is not None and sent.screen.image.exists()
    assert "0:02.5" in sent.screen.text
    labels = [b.label for b in sent.screen.all_buttons()]
    assert labels[:4] == ["−1s", "−0.1s", "+0.1s", "+1s"]
    assert {"🎬 Template", "🌀 Glitch", "🎵 Music", "✖ Cancel"} <= set(labels)
    assert sent.reply_to == "10"


async def test_scrub_edits_the_preview_in_place_and_clamps_at_the_end(services, tmp_path, video):
    sent, _ = await open_frame(services, tmp_path, video)
    edit = only(await drive(services).press(ctx(message="500"), button(sent.screen, "+1s")), Edit)
    assert edit.message_id == "500" and edit.new_media and "Frame at 0:03.5 of 0:06" in edit.screen.text
    edit = only(await drive(services).press(ctx(message="500"), button(edit.screen, "−0.1s")), Edit)
    assert "Frame at 0:03.4" in edit.screen.text
    for _ in range(4):
        edit = only(await drive(services).press(ctx(message="500"), button(edit.screen, "+1s")), Edit)
    assert "Frame at 0:06 of 0:06" in edit.screen.text
    assert edit.screen.image is not None and edit.screen.image.exists()


async def test_video_without_a_time_gets_a_contact_sheet_and_typed_times_work(services, tmp_path, video):
    sent = only(await drive(services).video(ctx(), upload(video, tmp_path), None), Send)
    assert len([b for b in sent.screen.all_buttons() if isinstance(b.action, SeekFrame)]) == 9
    await drive(services).bind_message(sent.session_id, "501")
    tile = sent.screen.buttons[1][1]
    edit = only(await drive(services).press(ctx(message="501"), tile.data), Edit)
    assert edit.new_media and tile.label in edit.screen.text
    typed = only(await drive(services).text(ctx(message="11"), "0:01.2"), Send)
    assert "0:01.2" in typed.screen.text


@pytest.mark.parametrize(("caption", "says"), [("soon", "isn't a time"), ("9:99:99", "")])
async def test_a_bad_time_is_explained_and_the_sheet_offered(services, tmp_path, av_video, caption, says):
    reply = await drive(services).video(ctx(), upload(av_video, tmp_path), caption)
    texts = [out.screen.text for out in reply.outs if isinstance(out, Send)]
    assert len(texts) == 2 and texts[1].startswith("🎞 Pick a moment")
    assert says in texts[0]


async def test_a_file_that_is_not_a_video_gets_a_clear_answer(services, tmp_path, bad_files):
    for bad in (bad_files.empty, bad_files.text, bad_files.audio_only):
        sent = only(await drive(services).video(ctx(), upload(bad, tmp_path), "1"), Send)
        assert sent.screen.text and "error." not in sent.screen.text


async def walk_to_confirm(services, sent: Send, who: ChatContext) -> Screen:
    edit = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "AI hug")), Edit)
    assert "✅ " in " ".join(b.label for b in edit.screen.all_buttons())  # chosen values marked
    edit = only(await drive(services).press(who, button(edit.screen, "9:16")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "Next")), Edit)
    assert "20 credits" in edit.screen.text and "50 → 30" in edit.screen.text
    return edit.screen


async def test_template_walk_charges_once_even_when_confirm_is_double_pressed(services, tmp_path, av_video):
    sent, _ = await open_frame(services, tmp_path, av_video)
    who = ctx(message="500")
    confirm = await walk_to_confirm(services, sent, who)
    go = button(confirm, "Confirm")
    first, second = await asyncio.gather(drive(services).press(who, go), drive(services).press(who, go))
    alerts = first.alerts + second.alerts
    assert len(alerts) == 1 and "Already done" in alerts[0].text
    user = await services.ledger.users.find("telegram", "1")
    assert await services.ledger.balance(user.id) == 30
    [job] = await services.jobs.for_user(user.id)
    assert job.action == TEMPLATE and job.request.template == "ai_hug"
    assert job.request.options == {"duration": 6, "aspect_ratio": "9:16"}
    assert job.reply_to_message_id == "10"


async def test_someone_else_pressing_my_buttons_changes_nothing(services, tmp_path, av_video):
    sent, session_id = await open_frame(services, tmp_path, av_video, who=ctx(chat="-5", kind="group"))
    intruder = ctx(user="2", chat="-5", kind="group", message="500")
    reply = await drive(services).press(intruder, button(sent.screen, "+1s"))
    assert [type(o) for o in reply.outs] == [Alert] and "not your session" in reply.outs[0].text
    session = await services.sessions.get(session_id)
    assert session.data.at == 2.5


@pytest.mark.parametrize("data", ["lz:st.scrub:nosuchid:10", "garbage", "lz:st.scrub", "x" * 80, None, "lz:job.again:zzzz"])
async def test_forged_or_stale_buttons_get_an_alert(services, data):
    reply = await drive(services).press(ctx(), data)
    assert [type(o) for o in reply.outs] == [Alert]


async def test_not_enough_credits_shows_the_shortfall_and_charges_nothing(services, tmp_path, av_video):
    sent, _ = await open_frame(services, tmp_path, av_video)
    user = await services.ledger.users.find("telegram", "1")
    await services.ledger.revoke(user.id, 40, actor="test")
    who = ctx(message="500")
    edit = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "Dance")), Edit)
    edit = only(await drive(services).press(who, button(edit.screen, "Next")), Edit)
    assert "10 credits short" in edit.screen.text
    reply = await drive(services).press(who, button(edit.screen, "Confirm"))
    assert "short by 10" in reply.alerts[0].text
    assert await services.ledger.balance(user.id) == 10
    assert await services.jobs.for_user(user.id) == []


async def test_custom_prompt_is_asked_checked_and_used(services, tmp_path, av_video):
    sent, _ = await open_frame(services, tmp_path, av_video)
    who = ctx(message="500")
    edit = only(await drive(services).press(who, button(sent.screen, "Template")), Edit)
    ask = only(await drive(services).press(who, button(edit.screen, "Custom prompt")), AskText)
    assert ask.max_length == 1000
    too_long = only(await drive(services).text(ctx(message="12"), "x" * 1001), Send)
    assert "1 to 1000" in too_long.screen.text
    options = only(await drive(services).text(ctx(message="13"), "  카메라가 \u200b하늘로  날아간다 "), Send)
    assert "Custom prompt" in options.screen.text
    await drive(services).bind_message(options.session_id, "502")
    confirm = only(await drive(services).press(ctx(message="502"), button(options.screen, "Next")), Edit)
    assert "카메라가" in confirm.screen.text


async def test_group_glitch_with_a_photo_then_replace(services, tmp_path, av_video, photo):
    member = ctx(user="7", chat="-9", kind="group", message="70")
    ask = only(await drive(services).glitch_with_clip(member, upload(av_video, tmp_path), reply_to="70"), Send)
    assert "send your image" in ask.screen.text
    await drive(services).bind_message(ask.session_id, "600")
    modes = only(await drive(services).photo(ctx(user="7", chat="-9", kind="group", message="71"),
                                             upload(photo, tmp_path)), Send)
    await drive(services).bind_message(modes.session_id, "601")
    confirm = only(await drive(services).press(ctx(user="7", chat="-9", kind="group", message="601"),
                                               button(modes.screen, "Replace")), Edit)
    assert "30 credits" in confirm.screen.text
    await drive(services).press(ctx(user="7", chat="-9", kind="group", message="601"), button(confirm.screen, "Confirm"))
    user = await services.ledger.users.find("telegram", "7")
    [job] = await services.jobs.for_user(user.id)
    assert job.action == GLITCH_REPLACE and Path(job.request.clip).exists() and Path(job.request.image).exists()
    assert job.reply_to_message_id == "70"


async def test_a_photo_nobody_asked_for_in_a_group_is_left_alone(services, tmp_path, photo):
    reply = await drive(services).photo(ctx(chat="-9", kind="group"), upload(photo, tmp_path))
    assert reply.outs == []


async def test_music_then_add_to_clip(services, tmp_path, av_video):
    services.engine.backend.scripts[services.engine.models[MUSIC].model_id] = Script(
        output={"audio_out": (tmp_path / "song.m4a").as_uri()})
    from tests.media_factory import make_audio

    make_audio(tmp_path / "song.m4a", 2.0)
    sent, _ = await open_frame(services, tmp_path, av_video)
    who = ctx(message="500")
    music = only(await drive(services).press(who, button(sent.screen, "Music")), Edit)
    assert "14 s" in music.screen.text  # bark's limits are said honestly
    confirm = only(await drive(services).press(who, button(music.screen, "Lo-fi")), Edit)
    await drive(services).press(who, button(confirm.screen, "Confirm"))
    user = await services.ledger.users.find("telegram", "1")
    [job] = await services.jobs.for_user(user.id)
    for _ in range(300):
        if (await services.jobs.get(job.id)).status == "delivered":
            break
        await asyncio.sleep(0.02)
    notifier = services.engine.notifiers["telegram"]
    assert notifier.delivered, await services.jobs.get(job.id)
    result = notifier.delivered[0][2]
    liked = await drive(services).press(ctx(user="2", message="800"), button(result, "👍"))
    assert "1 so far" in liked.alerts[0].text
    counted = only(liked, Edit)
    assert counted.buttons_only and counted.message_id == "800"
    assert "👍 1" in [b.label for b in counted.screen.all_buttons()]
    mux = only(await drive(services).press(ctx(message="800"), button(result, "Add to clip")), SendMedia)
    from core.media.probe import probe

    info = await probe(mux.media.path)
    assert info.has_audio and abs(info.duration - 3.0) < 0.3
    assert await services.ledger.balance(user.id) == 45  # adding music to a clip is free


async def test_admin_commands_for_admins_only(services):
    await drive(services).user(ctx(user="42", username="ann"))
    refused = only(await drive(services).admin(ctx(user="5"), "grant", ["42", "100"]), Send)
    assert "admins only" in refused.screen.text
    async with services.db.read() as tx:
        assert await tx.fetchval("SELECT COUNT(*) FROM admin_log WHERE allowed = 0") == 1
    admin = ctx(user="900", message="77")
    granted = only(await drive(services).admin(admin, "grant", ["@ann", "100", "contest", "winner"]), Send)
    assert "Granted 100" in granted.screen.text and "150" in granted.screen.text
    by_reply = only(await drive(services).admin(ctx(user="900", message="78"), "revoke", ["30"],
                                                replied=Target("42", "Ann")), Send)
    assert "Balance: 120" in by_reply.screen.text
    too_much = only(await drive(services).admin(ctx(user="900", message="79"), "revoke", ["42", "500"]), Send)
    assert "only 120" in too_much.screen.text
    credits = only(await drive(services).admin(admin, "credits", ["42"]), Send)
    assert "120 credits" in credits.screen.text and "contest winner" in credits.screen.text
    stats = only(await drive(services).admin(admin, "stats", []), Send)
    assert "Users: 3" in stats.screen.text


async def test_account_answers_in_the_users_language(services, tmp_path, av_video):
    korean = ctx(user="3", lang="ko-KR")
    balance = only(await drive(services).balance(korean), Send)
    assert "잔액: 50" in balance.screen.text and balance.screen.ephemeral
    chosen = only(await drive(services).set_language(ctx(user="3", lang="ko"), "en"), Send)
    assert chosen.screen.text == "Language set to English."
    assert "Balance: 50" in only(await drive(services).balance(korean), Send).screen.text
    assert "No jobs yet" in only(await drive(services).jobs_list(korean), Send).screen.text


async def test_a_glitch_clip_can_start_later_and_a_bad_start_is_explained(services, tmp_path, video, photo):
    member = ctx(user="8", chat="-3", kind="group", message="90")
    bad = only(await drive(services).glitch_with_clip(member, upload(video, tmp_path), start="0:30"), Send)
    assert "0:06" in bad.screen.text  # says how long the clip is
    ask = only(await drive(services).glitch_with_clip(member, upload(video, tmp_path), start="0:04"), Send)
    session = await services.sessions.get(ask.session_id)
    from core.media.probe import probe

    assert abs((await probe(Path(session.data.clip))).duration - 2.0) < 0.2  # 0:04 → 0:06


async def test_a_session_whose_media_was_cleaned_says_it_expired(services, tmp_path, video):
    sent, session_id = await open_frame(services, tmp_path, video)
    session = await services.sessions.get(session_id)
    Path(session.data.video).unlink()  # the media TTL passed
    reply = await drive(services).press(ctx(message="500"), button(sent.screen, "+1s"))
    assert [type(o) for o in reply.outs] == [Alert] and "expired" in reply.outs[0].text
