"""Social through the Desk, no platform: /delete asks the platform about chat admins only
when it decides, a feed page is a header and its clips, 🌀 starts the presser's session
with the source post, and a forged press on another chat's post does nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from pathlib import Path

import pytest

from bot.app import build_services, clean_up
from core import actions as act
from core.catalogue import JobRequest
from core.desk import (
    Alert,
    ChatContext,
    FeedAsked,
    PostAsked,
    PostDeleteAsked,
    Pressed,
    Send,
    SendFeed,
)
from core.engine.outcomes import Delivered
from core.settings import load_settings
from core.studio.requests import session_request
from tests.fakes.backend import ScriptedBackend
from tests.fakes.notifier import RecordingNotifier
from tests.test_social import delivered

ROOM, OTHER = "-500", "-600"


@pytest.fixture
async def services(tmp_path: Path, av_video: Path):
    settings = load_settings(
        None, database_url=f"sqlite:///{tmp_path / 'social.db'}", media_dir=tmp_path / "media",
        starter_credits=50, admin_ids="telegram:77",
    )
    built = await build_services(settings)
    built.engine.backend = ScriptedBackend(output_file=av_video)
    yield built
    await built.close()


def ctx(user: str, chat: str = ROOM, message: str | None = "40") -> ChatContext:
    return ChatContext("telegram", user, chat, "group", display_name=f"P{user}", username=f"p{user}",
                       language_code="en", message_id=message)


class AdminCheck:
    """The platform's answer to "is this person an admin of this chat?", counted."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked = 0

    async def __call__(self) -> bool:
        self.asked += 1
        return self.answer


async def post_by(services, user: str, job: str, chat: str = ROOM, output: Path | None = None):
    owner, _ = await services.ledger.ensure_user("telegram", user, username=f"p{user}")
    return await services.posts.record_delivered(
        delivered(owner, job, chat, prompt="a cat", output=str(output) if output else None)
    )


def feeds(reply) -> list[SendFeed]:
    return [out for out in reply.outs if isinstance(out, SendFeed)]


def said(reply) -> str:
    return "\n".join(o.text if isinstance(o, Alert) else o.screen.text for o in reply.outs
                     if isinstance(o, Alert | Send))


async def test_delete_asks_about_chat_admins_only_when_someone_else_deletes(services):
    desk = services.desk
    first, second = await post_by(services, "1", "j1"), await post_by(services, "1", "j2")

    nobody = AdminCheck(False)
    refused = await desk.answer(PostDeleteAsked(ctx("2"), str(first.id)), is_chat_admin=nobody)
    assert "Only the clip's owner" in said(refused) and nobody.asked == 1
    assert not (await services.posts.get(first.id)).deleted

    elsewhere = AdminCheck(True)  # an admin of another chat is nobody here
    hidden = await desk.answer(PostDeleteAsked(ctx("2", OTHER), str(first.id)), is_chat_admin=elsewhere)
    assert f"no post {first.id} here" in said(hidden) and elsewhere.asked == 0

    owner = AdminCheck(False)
    done = await desk.answer(PostDeleteAsked(ctx("1"), str(first.id)), is_chat_admin=owner)
    assert f"Post {first.id} deleted" in said(done) and owner.asked == 0

    admin = AdminCheck(True)
    by_admin = await desk.answer(PostDeleteAsked(ctx("3"), str(second.id)), is_chat_admin=admin)
    assert f"Post {second.id} deleted" in said(by_admin) and admin.asked == 1

    third = await post_by(services, "1", "j3")
    listed = AdminCheck(False)  # ADMIN_IDS count without asking the platform
    by_operator = await desk.answer(PostDeleteAsked(ctx("77"), str(third.id)), is_chat_admin=listed)
    assert f"Post {third.id} deleted" in said(by_operator) and listed.asked == 0

    bad = await desk.answer(PostDeleteAsked(ctx("2"), "12x"))
    assert "“12x” is not a post number" in said(bad)
    assert "is not a post number" in said(await desk.answer(PostAsked(ctx("2"), "#")))


async def test_a_feed_page_is_a_header_and_its_clips_and_pages_turn(services, tmp_path, av_video):
    clip = tmp_path / "out.mp4"
    shutil.copyfile(av_video, clip)
    mine = [await post_by(services, "1", f"f{n}", output=clip) for n in range(6)]
    await post_by(services, "9", "elsewhere", OTHER)

    [page] = feeds(await services.desk.answer(FeedAsked(ctx("2"))))
    assert isinstance(page, SendFeed) and page.message_id is None
    assert "page 1/2" in page.screen.text
    assert [b.action for b in page.screen.all_buttons()] == [act.TurnFeedPage(1)]
    assert len(page.clips) == 5 and {c.post_id for c in page.clips} < {p.id for p in mine}
    first = page.clips[0]
    assert first.file_id == "file-x" and first.path is not None and first.path.is_file()
    assert [b.label for b in first.buttons[0]] == ["👍", "🌀 Remix"]

    [turned] = feeds(await services.desk.answer(Pressed(ctx("2", message="41"), "lz:feed.page:1")))
    assert isinstance(turned, SendFeed) and turned.message_id == "41" and len(turned.clips) == 1
    assert [b.action for b in turned.screen.all_buttons()] == [act.TurnFeedPage(0)]
    seen = {c.post_id for c in page.clips} | {c.post_id for c in turned.clips}
    assert seen == {p.id for p in mine}, "every post of this chat, none of the other's"


async def test_remix_press_opens_the_pressers_own_session_naming_the_source(services, tmp_path, av_video):
    clip = tmp_path / "out.mp4"
    shutil.copyfile(av_video, clip)
    post = await post_by(services, "1", "r1", output=clip)
    other = await post_by(services, "9", "r2", OTHER, output=clip)

    reply = await services.desk.answer(Pressed(ctx("2"), act.RemixPost(post.id).pack()))
    [ask] = [o for o in reply.outs if isinstance(o, Send) and o.session_id]
    session = await services.sessions.get(ask.session_id)
    bob = await services.ledger.users.find("telegram", "2")
    assert session.user_id == bob.id and session.data.source_post == post.id
    asked = dataclasses.replace(session.data, action="glitch_replace", image=str(clip))
    assert session_request(asked, services.studio.templates).source_post == post.id

    forged = await services.desk.answer(Pressed(ctx("2"), act.LikePost(other.id).pack()))
    assert [type(o) for o in forged.outs] == [Alert] and "not from this chat" in said(forged)
    assert (await services.posts.get(other.id)).likes == 0


async def test_the_hourly_cleanup_lets_go_of_clips_older_than_post_ttl_days(services, tmp_path, av_video):
    clip = tmp_path / "out.mp4"
    shutil.copyfile(av_video, clip)
    real = services.posts.clock
    services.posts.clock = lambda: real() - 31 * 86400  # made 31 days ago
    old = await post_by(services, "1", "old", output=clip)
    services.posts.clock = real
    fresh = await post_by(services, "1", "new", output=clip)
    assert Path(old.clip_path).is_file() and Path(fresh.clip_path).is_file()

    await clean_up(services)
    assert (await services.posts.get(old.id)).clip_path is None, "past POST_TTL_DAYS (30)"
    assert (await services.posts.get(fresh.id)).clip_path == fresh.clip_path
    assert not (await services.posts.get(old.id)).deleted, "the post stays, without its clip"


async def test_the_engine_makes_each_delivered_clip_a_post_once_and_captions_a_remix(services, av_video):
    notifier = RecordingNotifier()
    services.engine.notifiers["telegram"] = notifier
    services.engine._pacer._interval = 0.01
    await services.engine.start()
    alice, _ = await services.ledger.ensure_user("telegram", "1", username="alice")
    bob, _ = await services.ledger.ensure_user("telegram", "2", username="bob")

    async def run(user, request: JobRequest, chat: str = ROOM):
        job = await services.engine.submit(user_id=user.id, platform="telegram", chat_id=chat,
                                           language="en", request=request)
        for _ in range(500):
            done = await services.jobs.get(job.id)
            if done.status == "delivered":
                return done
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job.id} not delivered: {done.status}")

    first = await run(alice, JobRequest("template", prompt="a cat", image=str(av_video)))
    post = await services.posts.of_job(first.id)
    assert (post.message_id, post.file_id) == (first.delivered_message_id, f"file-{first.id}")
    assert post.generation == 1 and Path(post.clip_path).is_file()
    assert any(f"Post {post.id}" in text for text in notifier.texts(first.id)), "the status says its number"
    remix = await run(bob, JobRequest("template", prompt="a dog", image=str(av_video), source_post=post.id))
    caption = [screen.text for job_id, _, screen in notifier.delivered if job_id == remix.id]
    assert caption and "remix of @alice's clip · generation 2" in caption[0]
    assert (await services.posts.of_job(remix.id)).source_post_id == post.id
    elsewhere = await run(bob, JobRequest("template", prompt="a fox", image=str(av_video),
                                          source_post=post.id), OTHER)
    caption = [screen.text for job_id, _, screen in notifier.delivered if job_id == elsewhere.id]
    assert "remix of a clip from another chat · generation 2" in caption[0] and "@alice" not in caption[0]

    # A second finish of a delivered job (another instance, a retry) makes no second post.
    await services.engine.finish(first, Delivered("again", "again"))
    assert (await services.posts.of_job(first.id)).id == post.id
    assert len([p for p in [await services.posts.get(post.id + n) for n in range(5)] if p]) == 3


class HeldAfterSend(RecordingNotifier):
    """The chat has the clip, but the send's answer is held: the job is not yet recorded
    as delivered (the window a quick 👍 lands in)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()
        self.release = asyncio.Event()

    async def deliver(self, job, media, screen):
        receipt = await super().deliver(job, media, screen)
        self.sent.set()
        await self.release.wait()
        return receipt


async def test_a_like_pressed_between_the_send_and_its_record_waits_for_the_post(services, av_video):
    notifier = HeldAfterSend()
    services.engine.notifiers["telegram"] = notifier
    services.engine._pacer._interval = 0.01
    await services.engine.start()
    alice, _ = await services.ledger.ensure_user("telegram", "1", username="alice")
    job = await services.engine.submit(user_id=alice.id, platform="telegram", chat_id=ROOM,
                                       language="en", request=JobRequest("template", prompt="a cat",
                                                                         image=str(av_video)))
    await asyncio.wait_for(notifier.sent.wait(), 30)
    press = asyncio.create_task(services.desk.answer(Pressed(ctx("2"), act.Like(job.id).pack())))
    await asyncio.sleep(0.3)
    assert not press.done(), "the press waits for the record, it is not refused"
    notifier.release.set()
    reply = await asyncio.wait_for(press, 10)
    assert "Liked" in said(reply), said(reply)
    assert (await services.posts.of_job(job.id)).likes == 1
