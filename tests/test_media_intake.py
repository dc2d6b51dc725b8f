"""What the bot accepts as a video or photo: pixel caps, container allow-list, GIF/MJPEG clips.

Every refusal is a clear, translated answer, read from the file's header before
any decoding, and nothing is charged for it.
"""

from __future__ import annotations

import shutil
import struct
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_services
from core.desk import ChatContext, Reply, Send
from core.errors import NotAVideo, TooManyPixels, UnsupportedFormat
from core.i18n import t
from core.media import configure, probe, probe_image
from core.media.pool import media_pool, shutdown_pool
from core.settings import load_settings
from tests.fakes.backend import ScriptedBackend
from tests.fakes.notifier import RecordingNotifier
from tests.media_factory import ffmpeg, make_av_video
from tests.test_studio import drive

DEFAULT_MAX_PIXELS = 16_777_216


def huge_png(path: Path, side: int = 16000) -> Path:  # side: a multiple of 400
    """A real, valid grey PNG of side × side: a few hundred KB that decode to side² bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    rows = bytes((1 + side) * 400)
    body = b"".join(packer.compress(rows) for _ in range(side // 400)) + packer.flush()
    header = struct.pack("!IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
                     + chunk(b"IEND", b""))
    return path


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("intake")
    source = make_av_video(work / "source.mp4", seconds=2.0)
    made = {
        "gif": work / "clip.gif",
        "mjpeg": work / "clip.avi",
        "h264": work / "clip.h264",
        "ts": work / "clip.ts",
        "flv": work / "clip.flv",
        "big": work / "big.mp4",
        "wide": work / "wide.mp4",
    }
    ffmpeg("-i", source, "-vf", "fps=10,scale=160:-2", made["gif"])
    ffmpeg("-i", source, "-c:v", "mjpeg", "-q:v", "5", "-c:a", "pcm_s16le", made["mjpeg"])
    ffmpeg("-i", source, "-c:v", "copy", "-an", "-f", "h264", made["h264"])
    ffmpeg("-i", source, "-c", "copy", "-f", "mpegts", made["ts"])
    ffmpeg("-i", source, "-c", "copy", "-f", "flv", made["flv"])
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=4098x4096:d=0.08:r=25", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", made["big"])
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=10:d=3", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", made["wide"])
    return made


@pytest.fixture
async def services(tmp_path: Path, av_video: Path) -> AsyncIterator[Any]:
    settings = load_settings(
        None, database_url=f"sqlite:///{tmp_path / 'intake.db'}", media_dir=tmp_path / "media",
        starter_credits=50,
    )
    built = await build_services(settings)
    built.engine.backend = ScriptedBackend(output_file=av_video)
    built.engine.notifiers["telegram"] = RecordingNotifier()
    await built.engine.start()
    yield built
    await built.close()
    configure(max_pixels=DEFAULT_MAX_PIXELS)


def ctx(user: str = "1", kind: str = "private", chat: str = "1") -> ChatContext:
    return ChatContext("telegram", user, chat, kind, display_name=f"user{user}",
                       language_code="en", message_id="10")


def upload(path: Path, tmp: Path) -> Path:
    copy = tmp / f"upload-{time.monotonic_ns()}{path.suffix}"
    shutil.copyfile(path, copy)
    return copy


def sent_texts(reply: Reply) -> list[str]:
    return [out.screen.text for out in reply.outs if isinstance(out, Send)]


async def balance(services: Any, user: str = "1") -> int:
    found, _ = await services.ledger.ensure_user("telegram", user)
    return int(await services.ledger.balance(found.id))


# --- 6. pixel caps -------------------------------------------------------------------
async def test_a_16000_pixel_png_is_refused_from_its_header_without_decoding(tmp_path: Path) -> None:
    picture = huge_png(tmp_path / "huge.png")
    assert picture.stat().st_size < 1_000_000  # small on disk, 256 MB once decoded
    shutdown_pool()  # a fresh worker: its peak memory is this call's alone
    with pytest.raises(TooManyPixels) as caught:
        await probe_image(picture)
    assert caught.value.params["width"] == 16000
    for lang in ("en", "ko"):
        assert "16000×16000" in t(lang, caught.value.key, **caught.value.params)
    (worker,) = media_pool().pids()
    assert peak_memory_mb(worker) < 200


async def test_a_video_just_over_4096x4096_is_refused(clips: dict[str, Path]) -> None:
    with pytest.raises(TooManyPixels) as caught:
        await probe(clips["big"])
    assert (caught.value.params["width"], caught.value.params["height"]) == (4098, 4096)


async def test_a_video_over_the_pixel_cap_gets_a_translated_answer_and_costs_nothing(
    services: Any, tmp_path: Path, av_video: Path
) -> None:
    configure(max_pixels=320 * 240 - 1)  # MAX_PIXELS set low by the operator
    before = await balance(services)
    texts = sent_texts(await drive(services).video(ctx(), upload(av_video, tmp_path), None))
    assert len(texts) == 1 and "320×240" in texts[0] and "error." not in texts[0]
    assert await balance(services) == before


async def test_a_glitch_clip_is_scaled_to_what_the_model_takes_before_it_is_reencoded(
    services: Any, tmp_path: Path, clips: dict[str, Path]
) -> None:
    reply = await drive(services).glitch_with_clip(ctx(kind="group", chat="-5"),
                                                   upload(clips["wide"], tmp_path))
    (sent,) = [out for out in reply.outs if isinstance(out, Send)]
    session = await services.sessions.get(sent.session_id)
    info = await probe(Path(session.data.clip))
    assert (info.width, info.height) == (1280, 720)


# --- 7. formats ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["h264", "ts", "flv"])
async def test_containers_off_the_allow_list_are_refused_by_name(
    clips: dict[str, Path], kind: str
) -> None:
    with pytest.raises(UnsupportedFormat) as caught:
        await probe(clips[kind])
    assert "MP4" in t("en", caught.value.key, **caught.value.params)


async def test_a_raw_h264_stream_gets_a_clear_answer_instead_of_an_error(
    services: Any, tmp_path: Path, clips: dict[str, Path]
) -> None:
    texts = sent_texts(await drive(services).video(ctx(), upload(clips["h264"], tmp_path), None))
    assert len(texts) == 1 and "MP4, MOV, WebM, MKV, AVI or GIF" in texts[0]


@pytest.mark.parametrize("kind", ["gif", "mjpeg"])
async def test_gif_and_motion_jpeg_clips_become_mp4_at_intake(
    services: Any, tmp_path: Path, clips: dict[str, Path], kind: str
) -> None:
    reply = await drive(services).video(ctx(), upload(clips[kind], tmp_path), None)
    sheet = [out for out in reply.outs if isinstance(out, Send)][-1]
    assert sheet.screen.image is not None  # the contact sheet: the clip was taken
    session = await services.sessions.get(sheet.session_id)
    info = await probe(Path(session.data.video))
    assert (info.codec, info.container.startswith("mov,mp4")) == ("h264", True)
    assert info.duration == pytest.approx(2.0, abs=0.15)


async def test_a_still_gif_is_a_picture_not_a_clip(tmp_path: Path) -> None:
    still = tmp_path / "still.gif"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:d=1", "-frames:v", "1", still)
    with pytest.raises(NotAVideo):
        await probe(still)
    assert (await probe_image(still)).width == 64


async def test_a_glitch_from_the_very_end_of_a_clip_is_explained_not_crashed(
    services: Any, tmp_path: Path, av_video: Path
) -> None:
    group = ctx(user="8", kind="group", chat="-3")
    before = await balance(services, "8")
    reply = await drive(services).glitch_with_clip(group, upload(av_video, tmp_path), start="0:03")
    texts = sent_texts(reply)
    assert len(texts) == 1 and "0:03" in texts[0] and "error." not in texts[0]
    assert await balance(services, "8") == before


async def test_a_gif_sent_as_a_photo_is_taken_as_a_clip(
    services: Any, tmp_path: Path, clips: dict[str, Path]
) -> None:
    reply = await drive(services).photo(ctx(), upload(clips["gif"], tmp_path))
    sheet = [out for out in reply.outs if isinstance(out, Send)][-1]
    assert sheet.screen.image is not None and sheet.session_id
    session = await services.sessions.get(sheet.session_id)
    assert (await probe(Path(session.data.video))).codec == "h264"
