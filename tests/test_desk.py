"""The Desk on its own: typed events in, replies out, with no chat platform involved.

Everything an adapter no longer does lives here once: the rate limit, who and which
language, the first-contact welcome, dispatch, and errors as translated alerts.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest

from bot.app import build_services
from core import actions as act
from core.desk import (
    AccountAsked,
    Alert,
    AskText,
    Awaiting,
    ChatContext,
    ClipShared,
    Edit,
    FormAnswered,
    Pressed,
    Reply,
    Send,
    Started,
    TextTyped,
    VideoSent,
)
from core.errors import VideoTooLarge
from core.ratelimit import UpdateRateLimiter
from core.screens import Screen
from core.sessions import SessionData, Step
from core.settings import load_settings
from tests.fakes.backend import ScriptedBackend
from tests.fakes.notifier import RecordingNotifier


@pytest.fixture
async def services(tmp_path: Path, av_video: Path):
    settings = load_settings(
        None, database_url=f"sqlite:///{tmp_path / 'desk.db'}", media_dir=tmp_path / "media",
        starter_credits=50,
    )
    built = await build_services(settings)
    built.engine.backend = ScriptedBackend(output_file=av_video)
    built.engine.notifiers["telegram"] = RecordingNotifier()
    built.engine._pacer._interval = 0.01
    await built.engine.start()
    yield built
    await built.close()


class Local:
    """A file on disk, as the Desk receives one (`Incoming`)."""

    def __init__(self, source: Path, tmp: Path) -> None:
        self.path = tmp / f"upload-{time.monotonic_ns()}{source.suffix}"
        shutil.copyfile(source, self.path)

    async def fetch(self) -> Path:
        return self.path


class Refused:
    """A file whose download is refused (over a platform's limit)."""

    async def fetch(self) -> Path:
        raise VideoTooLarge("too big", size_mb="300", limit_mb="200")


def web(user: str = "1", message: str | None = "10", lang: str | None = "en") -> ChatContext:
    """Who and where, as any adapter would say it (no adapter runs in these tests; the
    platform name is one the user directory accepts)."""
    return ChatContext("telegram", user, f"room-{user}", "private", display_name=f"Visitor {user}",
                       language_code=lang, message_id=message)


def sent(reply: Reply) -> Send:
    [one] = [out for out in reply.outs if isinstance(out, Send) and out.session_id]
    return one


def edit(reply: Reply) -> Edit:
    [one] = [out for out in reply.outs if isinstance(out, Edit)]
    return one


def press(screen: Screen, label: str) -> str:
    return next(b.data for b in screen.all_buttons() if label in b.label)


async def test_the_whole_template_flow_through_the_desk_with_typed_events(services, tmp_path, av_video):
    desk = services.desk
    hello = await desk.answer(Started(web()))
    [welcome] = hello.outs
    assert isinstance(welcome, Send) and "50 credits" in welcome.screen.text and hello.lang == "en"

    frame = sent(await desk.answer(VideoSent(web(), Local(av_video, tmp_path), "0:01.5")))
    assert "0:01.5" in frame.screen.text
    await desk.bind_message(frame.session_id, "studio-1")
    here = web(message="studio-1")
    templates = edit(await desk.answer(Pressed(here, press(frame.screen, "Template"))))
    options = edit(await desk.answer(Pressed(here, press(templates.screen, "AI hug"))))
    options = edit(await desk.answer(Pressed(here, press(options.screen, "9:16"))))
    confirm = edit(await desk.answer(Pressed(here, press(options.screen, "Next"))))
    assert "50 → 30" in confirm.screen.text
    started = edit(await desk.answer(Pressed(here, press(confirm.screen, "Confirm"))))
    assert "started" in started.screen.text.lower()

    notifier = services.engine.notifiers["telegram"]
    await asyncio.wait_for(notifier.done.wait(), 30)
    user = await services.ledger.users.find("telegram", "1")
    [job] = await services.jobs.for_user(user.id)
    assert [d[0] for d in notifier.delivered] == [job.id]
    assert job.request.template == "ai_hug" and job.request.options["aspect_ratio"] == "9:16"
    # What a notifier needs travels with the job: no store is read to deliver it.
    assert (job.owner_id, job.owner_name, job.reply_to_message_id) == ("1", "Visitor 1", "10")
    balance = await desk.answer(AccountAsked(web(), "balance"))
    assert "Balance: 30" in balance.outs[0].screen.text


async def test_a_first_contact_gets_the_welcome_once_then_what_was_asked(services):
    first = await services.desk.answer(TextTyped(web(user="2"), "hi"))
    again = await services.desk.answer(TextTyped(web(user="2"), "hi"))
    [hint] = again.outs
    assert isinstance(hint, Send) and not hint.screen.text.startswith("👋")
    assert "video" in hint.screen.text.lower()  # the hint that was asked for
    # The first time, one message: the welcome on top, then the same hint.
    [welcomed] = first.outs
    assert isinstance(welcomed, Send) and welcomed.screen.text.startswith("👋")
    assert welcomed.screen.text.endswith("\n\n" + hint.screen.text) and "credits" in welcomed.screen.text


async def test_too_many_events_get_a_slow_down_alert_in_the_users_language(services):
    services.desk.rate_limiter = UpdateRateLimiter(burst=2, per_second=0.001)
    korean = web(user="3", lang="ko")
    for _ in range(2):
        await services.desk.answer(TextTyped(korean, "hi"))
    slowed = await services.desk.answer(TextTyped(korean, "hi"))
    assert [type(o) for o in slowed.outs] == [Alert] and slowed.lang == "ko"


async def test_a_refused_download_and_an_unexpected_error_become_alerts(services, caplog):
    refused = await services.desk.answer(VideoSent(web(user="4"), Refused()))
    welcome, alert = refused.outs  # a first contact is welcomed even when what they sent is refused
    assert welcome.screen.text.startswith("👋") and "300 MB" in alert.text

    class Broken:
        async def fetch(self) -> Path:
            raise RuntimeError("disk on fire")

    broken = await services.desk.answer(VideoSent(web(user="4"), Broken()))
    assert [type(o) for o in broken.outs] == [Alert] and "went wrong" in broken.outs[0].text.lower()
    assert "disk on fire" in caplog.text


async def test_a_reply_says_what_the_studio_waits_for(services, tmp_path, av_video, photo):
    desk = services.desk
    sheet = await desk.answer(VideoSent(web(user="5"), Local(av_video, tmp_path)))
    assert sheet.awaiting is Awaiting.TIME
    ask = await desk.answer(ClipShared(web(user="5", message="20"), Local(av_video, tmp_path)))
    assert ask.awaiting is Awaiting.IMAGE
    # A file uploaded through a form goes to the session that asked for it.
    modes = await desk.answer(FormAnswered(web(user="5", message="21"), sent(ask).session_id,
                                           file=Local(photo, tmp_path)))
    assert "Animate" in " ".join(b.label for b in sent(modes).screen.all_buttons())
    assert modes.awaiting is Awaiting.NOTHING


async def test_a_custom_prompt_is_asked_for_and_its_answer_continues(services, tmp_path, av_video):
    desk = services.desk
    frame = sent(await desk.answer(VideoSent(web(user="6"), Local(av_video, tmp_path), "1")))
    await desk.bind_message(frame.session_id, "s6")
    templates = edit(await desk.answer(Pressed(web(user="6", message="s6"), press(frame.screen, "Template"))))
    asked = await desk.answer(Pressed(web(user="6", message="s6"), press(templates.screen, "Custom prompt")))
    assert isinstance(asked.outs[0], AskText) and asked.awaiting is Awaiting.PROMPT
    options = await desk.answer(FormAnswered(web(user="6"), frame.session_id, "a cat surfs"))
    assert "Custom prompt" in sent(options).screen.text


def test_actions_pack_to_the_wire_format_buttons_always_had_and_forgeries_unpack_to_nothing():
    assert act.SeekFrame("abc123", 25).pack() == "lz:st.at:abc123:25"
    assert act.SetOption("abc123", "aspect_ratio", 1).pack() == "lz:st.opt:abc123:aspect_ratio:1"
    assert act.unpack("lz:st.scrub:abc123:-10") == act.Scrub("abc123", -10)
    assert act.unpack("lz:job.like:j1") == act.Like("j1")
    for forged in ("lz:st.at:abc:x", "lz:st.at:abc", "lz:nope:1", "xx:st.go:abc", "lz:st.at:a:99999999", None):
        assert act.unpack(forged) is None
    with pytest.raises(ValueError):
        act.PickTemplate("s", "x" * 60).pack()


def test_post_buttons_work_for_any_post_id_a_database_hands_out():
    # A post id is a row id, not a time: the ten-day cap of time fields must not apply.
    for post in (1, 864_001, 10**12, 2**63 - 1):
        for kind in (act.LikePost, act.RemixPost, act.DeletePost):
            assert act.unpack(kind(post).pack()) == kind(post)
    assert act.unpack(f"lz:post.like:{2**63}") is None
    assert act.unpack("lz:st.at:abc123:864001") is None  # a time still is capped


def test_session_data_keeps_the_stored_json_as_it_was():
    stored = json.dumps({"video": "/m/v.mp4", "duration": 6.0, "at": 2.5, "options": {"duration": 6},
                         "source_message_id": "10", "unknown_future_key": 1})
    data = SessionData.from_json(stored)
    assert data.at == 2.5 and data.options == {"duration": 6} and data.frame is None
    assert json.loads(data.to_json()) == {k: v for k, v in json.loads(stored).items() if k != "unknown_future_key"}
    assert Step("frame") is Step.FRAME and Awaiting("") is Awaiting.NOTHING


async def test_an_uploaded_clip_goes_to_the_glitch_that_asked_and_a_photo_there_is_refused(
    services, tmp_path, av_video, photo
):
    desk = services.desk
    frame = sent(await desk.answer(VideoSent(web(user="7"), Local(av_video, tmp_path), "1")))
    await desk.bind_message(frame.session_id, "s7")
    asked = await desk.answer(Pressed(web(user="7", message="s7"), press(frame.screen, "Glitch")))
    assert asked.awaiting is Awaiting.CLIP
    wrong = await desk.answer(FormAnswered(web(user="7"), frame.session_id, file=Local(photo, tmp_path)))
    assert "isn't a video" in wrong.outs[0].screen.text
    modes = await desk.answer(FormAnswered(web(user="7"), frame.session_id,
                                           file=Local(av_video, tmp_path), is_video=True))
    assert "How should it work?" in sent(modes).screen.text
    late = await desk.answer(FormAnswered(web(user="7"), frame.session_id,
                                          file=Local(av_video, tmp_path), is_video=True))
    assert [type(o) for o in late.outs] == [Alert]  # nothing waits for a file any more


async def test_when_rendering_fails_the_user_is_told_once_in_their_language(services):
    class Flaky:
        def __init__(self) -> None:
            self.rendered: list[Reply] = []
            self.acknowledged = 0

        async def acknowledge(self) -> None:
            self.acknowledged += 1

        async def is_chat_admin(self) -> bool:
            return False

        async def render(self, reply: Reply) -> None:
            self.rendered.append(reply)
            if len(self.rendered) == 1:
                raise ConnectionError("platform hiccup")

    outlet = Flaky()
    await services.desk.serve(AccountAsked(web(user="8", lang="ko"), "help"), outlet)
    first, told = outlet.rendered
    assert outlet.acknowledged == 1 and first.lang == told.lang == "ko"
    assert [type(o) for o in told.outs] == [Alert] and "다시" in told.outs[0].text
