"""MEDIA_URL=s3://… wired through the bot: a studio session, a job, its delivery, a post and
the clean-up, each on whichever instance gets it.

Every instance here is a full `build_services` with its own empty MEDIA_DIR (its cache),
one PostgreSQL database and one bucket on a real S3 server (`rclone serve s3`); media is
real (ffmpeg-made video, the local backend's real render).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.app import Services, build_services, clean_up
from core.backends.local import LocalBackend
from core.backends.replicate import ReplicateBackend
from core.desk import ChatContext, Edit, Pressed, Reply, Send, VideoSent
from core.jobs import JobStatus
from core.media_s3 import S3Bucket
from core.media_store import MediaStore
from core.ratelimit import UpdateRateLimiter
from core.screens import Screen
from core.settings import load_settings
from core.social.posts import Posts
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.replicate import FakeReplicate
from tests.s3_server import S3Server, s3_server  # noqa: F401  (the fixture)

PREFIX = "lokiz"
Instance = Callable[[str], AbstractAsyncContextManager[Services]]


@pytest.fixture
async def bucket(s3_server: S3Server) -> str:  # noqa: F811
    return await s3_server.bucket()


def _settings(database_url: str, s3: S3Server, bucket: str, media_dir: Path, **more: Any) -> Any:
    return load_settings(
        None, database_url=database_url, media_dir=media_dir, starter_credits=50,
        media_url=f"s3://{bucket}/{PREFIX}", s3_endpoint_url=s3.endpoint,
        s3_access_key_id=s3.access_key, s3_secret_access_key=s3.secret_key, **more,
    )


@pytest.fixture
def instance(database_url: str, s3_server: S3Server, bucket: str,  # noqa: F811
             tmp_path: Path) -> Instance:
    """`async with instance("a") as a`: one bot instance (its own empty cache folder; the
    database and the bucket shared). Its engine is not started: tests start what they need."""

    @asynccontextmanager
    async def open_instance(name: str) -> AsyncIterator[Services]:
        services = await build_services(_settings(database_url, s3_server, bucket, tmp_path / name))
        # Real renders, small and quick.
        services.engine.backend = LocalBackend(services.media.root / "local", short_side=144, fps=8)
        services.engine._pacer._interval = 0.01
        services.desk.rate_limiter = UpdateRateLimiter(burst=1000)
        try:
            yield services
        finally:
            await services.close()

    return open_instance


def ctx(message: str | None = "10") -> ChatContext:
    return ChatContext("telegram", "1", "1", "private", display_name="user1", username=None,
                       language_code="en", message_id=message)


class Local:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def fetch(self) -> Path:
        return self.path


def only(reply: Reply, kind: type) -> Any:
    found = [out for out in reply.outs if isinstance(out, kind)]
    assert len(found) == 1, reply.outs
    return found[0]


def button(screen: Screen, label_part: str) -> str:
    for candidate in screen.all_buttons():
        if label_part in candidate.label:
            return candidate.data
    raise AssertionError(f"no {label_part!r} in {[b.label for b in screen.all_buttons()]}")


async def press(services: Services, data: str, message: str = "500") -> Reply:
    return await services.desk.answer(Pressed(ctx(message), data))


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def wait_status(services: Services, job_id: str, *status: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        job = await services.jobs.get(job_id)
        assert job is not None
        if job.status in status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        await asyncio.sleep(0.05)


async def start_a_job_on(a: Services, video: Path, tmp_path: Path) -> tuple[str, Send]:
    """A user's video, frame and template walk handled by instance `a`, up to a queued job."""
    upload = tmp_path / f"upload-{time.monotonic_ns()}.mp4"
    shutil.copyfile(video, upload)
    reply = await a.desk.answer(VideoSent(ctx(), Local(upload), "0:02.5"))
    sent = [out for out in reply.outs if isinstance(out, Send) and out.session_id][-1]
    await a.desk.bind_message(sent.session_id, "500")
    edit = only(await press(a, button(sent.screen, "Template")), Edit)
    edit = only(await press(a, button(edit.screen, "AI hug")), Edit)
    edit = only(await press(a, button(edit.screen, "Next")), Edit)
    only(await press(a, button(edit.screen, "Confirm")), Edit)
    user = await a.ledger.users.find("telegram", "1")
    assert user is not None
    [job] = await a.jobs.for_user(user.id)
    return job.id, sent


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_frame_captured_on_one_instance_is_rendered_and_delivered_on_another(
    instance: Instance, s3_server: S3Server, bucket: str, av_video: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with instance("a") as a:
        job_id, sent = await start_a_job_on(a, av_video, tmp_path)
        # The session stores keys; its video and frame are in the bucket.
        async with a.db.read() as tx:
            row = await tx.sessions.get(sent.session_id)
        assert row is not None and str(a.media.root) not in row["data"]
        names = s3_server.names(bucket)
        assert any(n.startswith(f"{PREFIX}/in/") and n.endswith(".mp4") for n in names), names
        assert f"{PREFIX}/sessions/{sent.session_id}/frame-25.jpg" in names
        job = await a.jobs.get(job_id)
        assert job is not None and job.request.image == f"sessions/{sent.session_id}/frame-25.jpg"

    async with instance("b") as b:
        assert files_under(b.media.root / "sessions") == []
        # A press on the session lands on instance b: its frame and video come from the bucket.
        scrub = only(await press(b, button(sent.screen, "−1s")), Edit)
        assert scrub.screen.image is not None and scrub.screen.image.is_file()
        assert scrub.screen.image.is_relative_to(b.media.root) and "0:01.5" in scrub.screen.text
        # b renders the job and delivers it (a worker takes only jobs it can deliver).
        notifier = RecordingNotifier()
        b.engine.notifiers["telegram"] = notifier
        await b.engine.start()
        delivered = await wait_status(b, job_id, JobStatus.DELIVERED)
        await b.engine.stop()
        assert delivered.output_path == f"outputs/{job_id}.mp4"
        frame = b.media.local_path(f"sessions/{sent.session_id}/frame-25.jpg")
        assert frame.is_file()  # fetched from the bucket to render
        assert f"{PREFIX}/outputs/{job_id}.mp4" in s3_server.names(bucket)
        [(sent_job, media, _)] = notifier.delivered
        assert sent_job == job_id and delivered.delivered_message_id == f"m-{job_id}-1"
        made = b.media.local_path(delivered.output_path).read_bytes()

    async with instance("c") as c:
        # A third instance, with an empty cache, reads the result by its key: the same bytes.
        assert not c.media.local_path(f"outputs/{job_id}.mp4").exists()
        fetched = await c.media.here(delivered.output_path)
        assert fetched.is_relative_to(c.media.root) and fetched.read_bytes() == made
        user = await c.ledger.users.find("telegram", "1")
        assert user is not None and await c.ledger.balance(user.id) == 30  # charged once


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_clean_up_removes_old_objects_and_keeps_live_posts_clips(
    instance: Instance, s3_server: S3Server, bucket: str, av_video: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with instance("a") as a:
        job_id, sent = await start_a_job_on(a, av_video, tmp_path)
        a.engine.notifiers["telegram"] = notifier = RecordingNotifier()
        await a.engine.start()
        job = await wait_status(a, job_id, JobStatus.DELIVERED)
        await a.engine.stop()
        [(_, _, result)] = notifier.delivered
    async with instance("b") as b:
        # "Remix" pressed under the result, handled by b: the clip (the post's kept copy,
        # or the output while no post is recorded) comes from the bucket and becomes the
        # clip of a new session.
        fetched = [b.media.local_path(f"{kind}/{job_id}.mp4") for kind in ("outputs", "posts")]
        assert not any(path.exists() for path in fetched)
        remix = only(await press(b, button(result, "Remix"), message="800"), Send)
        assert remix.session_id and any(path.is_file() for path in fetched)
        new = await b.sessions.get(remix.session_id)
        assert new is not None and new.data.clip is not None and Path(new.data.clip).is_file()
        post = await Posts(b.db, media=b.media).record_delivered(job)
        assert post.clip_path == f"posts/{job_id}.mp4"  # a key: any instance finds the clip
        assert b.media.local_path(post.clip_path).is_file()
        names = s3_server.names(bucket)
        assert f"{PREFIX}/posts/{job_id}.mp4" in names
        frame, output = f"sessions/{sent.session_id}/frame-25.jpg", f"outputs/{job_id}.mp4"
        assert {f"{PREFIX}/{frame}", f"{PREFIX}/{output}"} <= set(names)
        # Two days old: past MEDIA_TTL_HOURS (48) but well within POST_TTL_DAYS (30).
        for name in names:
            await s3_server.age(bucket, name, hours=49)
        await clean_up(b)
        assert s3_server.names(bucket) == [f"{PREFIX}/posts/{job_id}.mp4"]
        # Past POST_TTL_DAYS the post's clip goes too.
        await s3_server.age(bucket, f"{PREFIX}/posts/{job_id}.mp4", hours=31 * 24)
        await clean_up(b)
        assert s3_server.names(bucket) == []


async def test_a_public_bucket_gives_replicate_presigned_urls_and_no_uploads(
    s3_server: S3Server, bucket: str, photo: Path, tmp_path: Path,  # noqa: F811
) -> None:
    async def store(name: str, public: bool) -> MediaStore:
        shared = S3Bucket(bucket, PREFIX, access_key_id=s3_server.access_key,
                          secret_access_key=SecretStr(s3_server.secret_key),
                          endpoint_url=s3_server.endpoint, public=public)
        media = MediaStore(tmp_path / name, shared=shared)
        await media.start()
        return media

    public, private = await store("public", True), await store("private", False)
    async with FakeReplicate() as fake:
        try:
            for media, job_id in ((public, "job-public"), (private, "job-private")):
                image = media.path("sessions", "s1", "frame-10.jpg")
                shutil.copyfile(photo, image)
                backend = ReplicateBackend(fake.token, fake.base_url, media=media)
                try:
                    prepared = await backend.prepare(job_id, {"image": image, "prompt": "hug"})
                    prediction_id = await backend.create(job_id, "google/veo-3-fast", prepared)
                    await fake.wait_for(lambda p=prediction_id: fake.predictions[p].done)
                finally:
                    await backend.close()
                assert fake.predictions[prediction_id].status == "succeeded"
                if media is public:
                    url = prepared["image"]
                    assert url.startswith(s3_server.endpoint) and "X-Amz-Signature=" in url
                    assert fake.files == {}  # nothing uploaded
                    [fetch] = fake.input_fetches  # Replicate itself GETs the object
                    assert (fetch.url, fetch.status) == (url, 200)
                    assert fetch.body == photo.read_bytes()
                    assert f"{PREFIX}/sessions/s1/frame-10.jpg" in s3_server.names(bucket)
                else:
                    assert prepared["image"].startswith(fake.api_url + "/files/")
                    assert len(fake.files) == 1 and len(fake.input_fetches) == 1
        finally:
            await public.close()
            await private.close()


async def test_ready_means_the_cache_folder_and_the_bucket_answer(
    s3_server: S3Server, bucket: str, tmp_path: Path,  # noqa: F811
) -> None:
    local = MediaStore(tmp_path / "local")
    await local.start()
    assert await local.ping()
    shared = S3Bucket(bucket, PREFIX, access_key_id=s3_server.access_key,
                      secret_access_key=SecretStr(s3_server.secret_key),
                      endpoint_url=s3_server.endpoint)
    media = MediaStore(tmp_path / "cache", shared=shared)
    (tmp_path / "cache").mkdir()
    assert not await media.ping()  # not started: no client yet
    await media.start()
    try:
        assert await media.ping()
        async with s3_server.client() as client:  # the bucket goes away
            await client.delete_bucket(Bucket=bucket)
        assert not await media.ping()
    finally:
        await media.close()


async def test_without_media_url_sessions_and_jobs_keep_local_paths_as_before(
    tmp_path: Path, av_video: Path,
) -> None:
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'local.db'}",
                             media_dir=tmp_path / "media", starter_credits=50)
    services = await build_services(settings)
    try:
        assert not services.media.shared.shared
        job_id, sent = await start_a_job_on(services, av_video, tmp_path)
        async with services.db.read() as tx:
            row = await tx.sessions.get(sent.session_id)
        assert row is not None
        frame = tmp_path / "media" / "sessions" / sent.session_id / "frame-25.jpg"
        assert str(frame) in row["data"] and frame.is_file()
        job = await services.jobs.get(job_id)
        assert job is not None and job.request.image == str(frame)
        services.engine.backend = LocalBackend(services.media.root / "local", short_side=144, fps=8)
        services.engine.notifiers["telegram"] = notifier = RecordingNotifier()
        await services.engine.start()
        done = await wait_status(services, job_id, JobStatus.DELIVERED)
        assert done.output_path == str(tmp_path / "media" / "outputs" / f"{job_id}.mp4")
        assert [sent_job for sent_job, _, _ in notifier.delivered] == [job_id]
    finally:
        await services.close()
