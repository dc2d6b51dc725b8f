"""MEDIA_URL=s3://…: media shared by every instance through S3-compatible object storage.

Against a real S3 server (`rclone serve s3`, tests/s3_server.py); two MediaStores with their
own cache folders and one bucket stand for two instances of the bot.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.app import build_services
from core.credits import CreditLedger
from core.errors import ConfigError, MediaQuotaExceeded
from core.media_s3 import S3Bucket
from core.media_store import MediaNotShared, MediaStore, media_store_from
from core.settings import load_settings
from core.storage import Database
from tests.s3_server import S3Server, s3_server  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parent.parent
KB = 1024
Instance = Callable[..., AbstractAsyncContextManager[MediaStore]]


@pytest.fixture
async def bucket(s3_server: S3Server) -> str:  # noqa: F811
    return await s3_server.bucket()


@pytest.fixture
def instance(s3_server: S3Server, bucket: str, tmp_path: Path) -> Instance:  # noqa: F811
    """`async with instance("a") as media`: one bot instance's store (own cache, shared bucket)."""

    @asynccontextmanager
    async def open_instance(name: str, *, db: Database | None = None, quota_mb: int | None = None,
                            public: bool = False, **bucket_options: Any,
                            ) -> AsyncIterator[MediaStore]:
        shared = S3Bucket(bucket, "lokiz/media", access_key_id=s3_server.access_key,
                          secret_access_key=SecretStr(s3_server.secret_key),
                          endpoint_url=s3_server.endpoint, public=public, **bucket_options)
        media = MediaStore(tmp_path / name, ttl_hours=48, db=db, quota_mb=quota_mb,
                           shared=shared)
        await media.start()
        try:
            yield media
        finally:
            await media.close()

    return open_instance


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def test_an_input_kept_on_one_instance_is_fetched_with_the_same_bytes_on_another(
    instance: Instance, s3_server: S3Server, bucket: str,  # noqa: F811
) -> None:
    video = os.urandom(300 * KB)
    async with instance("a") as a, instance("b") as b:
        kept = await a.keep(write(a.temp(".mp4"), video))
        key = a.key_of(kept)
        assert key.startswith("in/") and key.endswith(".mp4")
        assert f"lokiz/media/{key}" in s3_server.names(bucket)
        assert not b.local_path(key).exists()

        fetched = await b.fetch(key)

        assert fetched == b.local_path(key) and fetched.read_bytes() == video
        assert fetched.is_relative_to(b.root)
        # …and the other way: an output written on b is read on a.
        output = write(b.path("outputs", "42.mp4"), b"output bytes")
        assert await b.put(output) == "outputs/42.mp4"
        assert (await a.fetch("outputs/42.mp4")).read_bytes() == b"output bytes"


async def test_a_big_file_goes_up_in_parts_and_comes_back_whole(instance: Instance) -> None:
    clip = os.urandom(11 * 1024 * KB)
    async with instance("a", part_size=5 * 1024 * KB) as a, instance("b") as b:
        key = a.key_of(await a.keep(write(a.temp(".mp4"), clip)))
        assert (await b.fetch(key)).read_bytes() == clip


async def test_the_same_bytes_kept_twice_are_one_object(
    instance: Instance, s3_server: S3Server, bucket: str,  # noqa: F811
) -> None:
    async with instance("a") as a, instance("b") as b:
        first = await a.keep(write(a.temp(".jpg"), b"same picture"))
        second = await b.keep(write(b.temp(".jpg"), b"same picture"))
        assert a.key_of(first) == b.key_of(second)
        assert s3_server.names(bucket) == [f"lokiz/media/{a.key_of(first)}"]


async def test_a_key_no_instance_has_is_file_not_found_and_a_bad_key_is_refused(
    instance: Instance,
) -> None:
    async with instance("b") as b:
        with pytest.raises(FileNotFoundError):
            await b.fetch("in/00/gone.mp4")
        assert not b.local_path("in/00/gone.mp4").exists()
        assert list(b.root.rglob("*.part")) == []  # no half file left behind
        for bad in ("../etc/passwd", "/abs/path", "in/../../x", ""):
            with pytest.raises(ValueError):
                b.local_path(bad)


async def test_a_presigned_url_serves_the_object_to_a_plain_http_get(instance: Instance) -> None:
    frame = os.urandom(50 * KB)
    async with instance("a", public=True) as a:
        kept = await a.keep(write(a.temp(".jpg"), frame))
        url = await a.presigned_url(a.key_of(kept), expires=300)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as answer:
                assert answer.status == 200
                assert await answer.read() == frame
            # Without the signature, or with another, the bucket does not hand it out.
            for refused in (url.split("?")[0], url[:-4] + "0000"):
                async with http.get(refused) as answer:
                    assert answer.status in (400, 401, 403) and await answer.read() != frame
            # The URL Replicate would get for a file of this instance (shared first).
            output = write(a.path("outputs", "7.mp4"), b"clip for replicate")
            public = await a.public_url(output)
            assert public is not None
            async with http.get(public) as answer:
                assert await answer.read() == b"clip for replicate"


async def test_a_private_bucket_or_local_folder_gives_no_url_so_the_backend_uploads(
    instance: Instance, tmp_path: Path,
) -> None:
    async with instance("a", public=False) as a:
        assert await a.public_url(write(a.path("outputs", "1.mp4"), b"x")) is None
    local = MediaStore(tmp_path / "local")
    assert await local.public_url(write(local.path("outputs", "1.mp4"), b"x")) is None
    with pytest.raises(MediaNotShared):
        await local.presigned_url("outputs/1.mp4")


async def test_cleanup_deletes_old_objects_in_batches_and_keeps_fresh_ones(
    instance: Instance, s3_server: S3Server, bucket: str,  # noqa: F811
) -> None:
    async with instance("a", page_size=4, delete_batch=3) as a:
        old = [await a.put(write(a.path("sessions", "old", f"frame-{i}.jpg"), b"f%d" % i))
               for i in range(7)]
        fresh = await a.put(write(a.path("sessions", "live", "frame.jpg"), b"live"))
        old_post = await a.put(write(a.path("posts", "1.mp4"), b"old post"))
        young_post = await a.put(write(a.path("posts", "2.mp4"), b"young post"))
        for key in old:
            await s3_server.age(bucket, f"lokiz/media/{key}", hours=49)
        await s3_server.age(bucket, f"lokiz/media/{old_post}", hours=31 * 24)
        await s3_server.age(bucket, f"lokiz/media/{young_post}", hours=49)  # posts stay 30 days
        before = time.time() - 49 * 3600
        for path in a.root.rglob("*.*"):
            os.utime(path, (before, before))  # this instance's cache is just as old

        await a.clean()

        assert s3_server.names(bucket) == [f"lokiz/media/{k}" for k in (young_post, fresh)]
        assert not a.local_path(fresh).exists()  # the cache went; the bucket still has it
        assert (await a.fetch(fresh)).read_bytes() == b"live"


async def test_an_input_kept_again_restarts_its_clock_in_the_bucket(
    instance: Instance, s3_server: S3Server, bucket: str,  # noqa: F811
) -> None:
    async with instance("a") as a, instance("b") as b:
        key = a.key_of(await a.keep(write(a.temp(".mp4"), b"reused video")))
        await s3_server.age(bucket, f"lokiz/media/{key}", hours=47)
        await b.keep(write(b.temp(".mp4"), b"reused video"))  # the user sends it again
        async with s3_server.client() as client:
            listed = await client.list_objects_v2(Bucket=bucket, Prefix=f"lokiz/media/{key}")
        # Written anew: it now lives a whole MEDIA_TTL_HOURS from this use, not 1 more hour.
        [item] = listed["Contents"]
        assert time.time() - item["LastModified"].timestamp() < 46 * 3600


@pytest.mark.both_stores
async def test_the_media_quota_counts_what_a_user_kept_on_every_instance(
    instance: Instance, db: Database, ledger: CreditLedger,
) -> None:
    owner = (await ledger.ensure_user("telegram", "7"))[0].id
    async with instance("a", db=db, quota_mb=1) as a, instance("b", db=db, quota_mb=1) as b:
        kept = await a.keep(write(a.temp(".mp4"), b"a" * (600 * KB)), owner=owner)
        await b.keep(write(b.temp(".mp4"), b"a" * (600 * KB)), owner=owner)  # same bytes
        assert await a.usage(owner) == await b.usage(owner) == 600 * KB
        refused = write(b.temp(".mp4"), b"b" * (500 * KB))
        with pytest.raises(MediaQuotaExceeded):
            await b.keep(refused, owner=owner)
        assert not refused.exists()
        await b.discard(b.local_path(a.key_of(kept)), owner=owner)
        assert await a.usage(owner) == 0
        with pytest.raises(FileNotFoundError):
            await b.fetch(a.key_of(kept))  # discarded from the bucket too


# -- settings and start-up ---------------------------------------------------------------

S3_ENV = {"MEDIA_URL": "s3://lokiz-media/prod", "S3_ACCESS_KEY_ID": "lokizkey",
          "S3_SECRET_ACCESS_KEY": "very-secret-key-value"}


@pytest.mark.parametrize(("change", "variable"), [
    ({"S3_ACCESS_KEY_ID": ""}, "S3_ACCESS_KEY_ID"),
    ({"S3_SECRET_ACCESS_KEY": ""}, "S3_SECRET_ACCESS_KEY"),
    ({"MEDIA_URL": "https://lokiz-media/prod"}, "MEDIA_URL"),
    ({"MEDIA_URL": "s3://Bad_Bucket!"}, "MEDIA_URL"),
    ({"S3_ENDPOINT_URL": "minio:9000"}, "S3_ENDPOINT_URL"),
    ({"S3_REGION": "US East"}, "S3_REGION"),
    ({"MEDIA_URL": "", "MEDIA_PUBLIC": "true"}, "MEDIA_PUBLIC"),
])
def test_a_missing_or_malformed_s3_setting_is_one_line_naming_it(
    change: dict[str, str], variable: str, tmp_path: Path,
) -> None:
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in {**S3_ENV, **change}.items()))
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}:") and "\n" not in message
    assert "very-secret-key-value" not in message


def test_no_media_url_is_the_local_folder(tmp_path: Path) -> None:
    settings = load_settings(None, media_dir=tmp_path / "m")
    assert settings.media_url is None and not media_store_from(settings).shared.shared


def start_bot(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_", "S3_", "MEDIA_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**clean, "PYTHONPATH": str(ROOT), "TELEGRAM_BOT_TOKEN": "123:ABC",
                          "DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}",
                          "MEDIA_DIR": str(tmp_path / "media"), **env},
    )


def test_a_wrong_secret_key_stops_start_up_naming_it_without_echoing_it(
    s3_server: S3Server, bucket: str, tmp_path: Path,  # noqa: F811
) -> None:
    wrong = "wrong-" + s3_server.secret_key[6:]
    done = start_bot(tmp_path, {"MEDIA_URL": f"s3://{bucket}/m", "S3_ENDPOINT_URL": s3_server.endpoint,
                                "S3_ACCESS_KEY_ID": s3_server.access_key,
                                "S3_SECRET_ACCESS_KEY": wrong, "LOG_LEVEL": "DEBUG"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: S3_SECRET_ACCESS_KEY:") or lines[-1].startswith(
        "error: S3_ACCESS_KEY_ID:"), done.stderr
    assert wrong not in done.stderr + done.stdout
    assert s3_server.secret_key not in done.stderr + done.stdout


@pytest.mark.parametrize(("problem", "variable"), [
    ("no bucket", "MEDIA_URL"), ("unknown key", "S3_ACCESS_KEY_ID"),
    ("nothing listening", "S3_ENDPOINT_URL"),
])
async def test_a_wrong_s3_setting_stops_start_up_naming_it(
    problem: str, variable: str, s3_server: S3Server, bucket: str, tmp_path: Path,  # noqa: F811
) -> None:
    values = {"media_url": f"s3://{bucket}/m", "s3_endpoint_url": s3_server.endpoint,
              "s3_access_key_id": s3_server.access_key,
              "s3_secret_access_key": s3_server.secret_key}
    if problem == "no bucket":
        values["media_url"] = "s3://no-such-bucket/m"
    elif problem == "unknown key":
        values["s3_access_key_id"] = "nobodyknowsthiskey"
    else:
        with __import__("socket").socket() as probe:
            probe.bind(("127.0.0.1", 0))
            values["s3_endpoint_url"] = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'l.db'}",
                             media_dir=tmp_path / "media", http_port=0, **values)
    with pytest.raises(ConfigError) as caught:
        await build_services(settings)
    assert str(caught.value).startswith(f"{variable}:"), caught.value
    assert s3_server.secret_key not in str(caught.value)


async def test_the_secret_key_never_reaches_the_logs(
    instance: Instance, s3_server: S3Server, bucket: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's debug lines, before any redaction
    async with instance("a", public=True) as a, instance("b") as b:
        key = a.key_of(await a.keep(write(a.temp(".mp4"), os.urandom(KB))))
        await b.fetch(key)
        await a.presigned_url(key)
        await a.clean()
    wrong = S3Bucket(bucket, access_key_id=s3_server.access_key,
                     secret_access_key=SecretStr(s3_server.secret_key[::-1]),
                     endpoint_url=s3_server.endpoint)
    with pytest.raises(ConfigError) as caught:
        await wrong.start()
    assert "botocore" in caplog.text  # the client's own debug lines were captured
    for secret in (s3_server.secret_key, s3_server.secret_key[::-1]):
        assert secret not in caplog.text and secret not in str(caught.value)
        assert secret not in repr(wrong) and secret not in repr(load_settings(
            None, media_url="s3://x-y/z", s3_access_key_id="k", s3_secret_access_key=secret))
