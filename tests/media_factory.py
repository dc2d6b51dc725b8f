"""Small, real test media made with the bundled ffmpeg, once per test session.

Register the fixtures once for the whole suite from tests/conftest.py:

    pytest_plugins = ["tests.media_factory"]
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest

from core.media.ffmpeg import ffmpeg_path

COUNTER_FPS = 25
COUNTER_FRAMES = 100  # 4 s
COUNTER_GOP = 50  # keyframes at 0 s and 2 s only


def counter_level(index: int) -> int:
    """The grey level (limited-range luma) of frame `index` of the counter video."""
    return 16 + (index * 37) % 220


def ffmpeg(*args: str | Path) -> None:
    """Run the bundled ffmpeg (tests only: synchronous, fails loudly)."""
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
        check=True,
        timeout=120,
    )


def make_counter_video(path: Path) -> Path:
    """320×240, 25 fps, 4 s; frame i is a flat grey of `counter_level(i)`; B-frames, 2 s GOP."""
    ffmpeg(
        "-f", "lavfi", "-i",
        f"color=c=black:s=320x240:r={COUNTER_FPS}:d={COUNTER_FRAMES / COUNTER_FPS},"
        "geq=lum='16+mod(N*37,220)':cb=128:cr=128",
        "-c:v", "libx264", "-preset", "ultrafast", "-bf", "2",
        "-crf", "8", "-g", str(COUNTER_GOP), "-keyint_min", str(COUNTER_GOP),
        "-sc_threshold", "0", "-pix_fmt", "yuv420p", path,
    )
    return path


def make_rotated_video(work: Path) -> Path:
    """A phone-style clip: stored sideways (320×240) with a -90° display matrix.

    Upright it is 240×320: red top half, blue bottom half, green square top-left.
    """
    stored = work / "rotated-stored.mp4"
    ffmpeg(
        "-f", "lavfi", "-i",
        "color=red:s=240x160:d=1:r=25[top];color=blue:s=240x160:d=1:r=25[bottom];"
        "[top][bottom]vstack,drawbox=x=0:y=0:w=60:h=60:c=lime:t=fill,transpose=cclock",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", stored,
    )
    path = work / "rotated.mp4"
    ffmpeg("-display_rotation:v", "-90", "-i", stored, "-c", "copy", path)
    return path


def make_av_video(path: Path, seconds: float = 3.0) -> Path:
    """H.264/AAC MP4 with sound, 320×240: ready for upload as it is."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s=320x240:r=25:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f=330:d={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "64k", "-shortest", path,
    )
    return path


def make_webm_video(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=318x240:r=25:d=2",
           "-c:v", "libvpx", "-b:v", "400k", "-deadline", "realtime", path)
    return path


def make_noisy_video(path: Path) -> Path:
    """3 s of heavy noise: no quality encode fits a small budget."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=3,noise=alls=60:allf=t",
           "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-pix_fmt", "yuv420p", path)
    return path


def make_long_1080p(path: Path) -> Path:
    """A genuine 60 s 1920×1080 H.264/AAC video, kept cheap (5 fps, test pattern)."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=5:d=60",
        "-f", "lavfi", "-i", "sine=f=440:d=60",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "16", "-g", "10",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", path,
    )
    return path


def make_slow_to_seek_video(path: Path) -> Path:
    """30 s at 640×360 with a single keyframe: a frame near the end needs the whole file decoded."""
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=30",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "100000", "-keyint_min", "100000",
           "-sc_threshold", "0", "-pix_fmt", "yuv420p", path)
    return path


def make_image(path: Path, size: str = "320x240") -> Path:
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:d=1", "-frames:v", "1", "-update", "1", path)
    return path


def make_audio(path: Path, seconds: float, freq: int = 440) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=f={freq}:d={seconds}", "-c:a", "aac", "-b:a", "64k", path)
    return path


@dataclass(frozen=True)
class BadFiles:
    empty: Path
    text: Path
    image: Path
    random_bytes: Path
    audio_only: Path
    truncated: Path  # index (moov) at the end, cut off
    truncated_faststart: Path  # index at the front, data cut off
    truncated_webm: Path


def make_bad_files(work: Path) -> BadFiles:
    empty = work / "empty.mp4"
    empty.write_bytes(b"")
    text = work / "notes.mp4"
    text.write_text("this is a shopping list, not a video\n" * 20)
    random_bytes = work / "noise.mp4"
    random_bytes.write_bytes(os.urandom(64 * 1024))
    source = make_av_video(work / "bad-source.mp4", seconds=2.0)
    truncated = work / "truncated.mp4"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    faststart = work / "bad-source-fast.mp4"
    ffmpeg("-i", source, "-c", "copy", "-movflags", "+faststart", faststart)
    truncated_fast = work / "truncated-fast.mp4"
    truncated_fast.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    image = make_image(work / "photo.jpg").rename(work / "photo.mp4")  # a JPEG named like a video
    webm = make_webm_video(work / "bad-source.webm")
    truncated_webm = work / "truncated.webm"
    truncated_webm.write_bytes(webm.read_bytes()[: webm.stat().st_size // 4])
    return BadFiles(
        empty=empty,
        text=text,
        image=image,
        random_bytes=random_bytes,
        audio_only=make_audio(work / "voice.m4a", 2.0),
        truncated=truncated,
        truncated_faststart=truncated_fast,
        truncated_webm=truncated_webm,
    )


# --- reading media back ----------------------------------------------------------
def rgb_rows(frame: av.VideoFrame) -> list[bytes]:
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    data, stride, row = bytes(plane), plane.line_size, rgb.width * 3
    return [data[y * stride : y * stride + row] for y in range(rgb.height)]


def mean_rgb(frame: av.VideoFrame, box: tuple[int, int, int, int] | None = None) -> tuple[float, ...]:
    """Mean (R, G, B) of the frame, or of box (x, y, w, h)."""
    rows = rgb_rows(frame)
    x, y, w, h = box or (0, 0, frame.width, frame.height)
    totals, count = [0, 0, 0], 0
    for line in rows[y : y + h]:
        segment = line[x * 3 : (x + w) * 3]
        for channel in range(3):
            totals[channel] += sum(segment[channel::3])
        count += len(segment) // 3
    return tuple(total / count for total in totals)


def first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


def all_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


def video_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(video=0) if p.size]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        end = 0.0
        for packet in container.demux(stream):
            if packet.pts is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * stream.time_base))
        return end


# --- fixtures (session scope: each file is made once) ----------------------------
@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def counter_video(media_dir: Path) -> Path:
    return make_counter_video(media_dir / "counter.mp4")


@pytest.fixture(scope="session")
def counter_levels(counter_video: Path) -> list[float]:
    """Mean red level of every decoded frame of the counter video, by frame index."""
    return [mean_rgb(frame)[0] for frame in all_frames(counter_video)]


@pytest.fixture(scope="session")
def rotated_video(media_dir: Path) -> Path:
    return make_rotated_video(media_dir)


@pytest.fixture(scope="session")
def av_video(media_dir: Path) -> Path:
    return make_av_video(media_dir / "with-sound.mp4")


@pytest.fixture(scope="session")
def webm_video(media_dir: Path) -> Path:
    return make_webm_video(media_dir / "clip.webm")


@pytest.fixture(scope="session")
def noisy_video(media_dir: Path) -> Path:
    return make_noisy_video(media_dir / "noisy.mp4")


@pytest.fixture(scope="session")
def long_1080p_video(media_dir: Path) -> Path:
    return make_long_1080p(media_dir / "long-1080p.mp4")


@pytest.fixture(scope="session")
def slow_to_seek_video(media_dir: Path) -> Path:
    return make_slow_to_seek_video(media_dir / "one-keyframe.mp4")


@pytest.fixture(scope="session")
def photo(media_dir: Path) -> Path:
    return make_image(media_dir / "photo.jpg")


@pytest.fixture(scope="session")
def short_music(media_dir: Path) -> Path:
    return make_audio(media_dir / "short-music.m4a", 1.0, freq=523)


@pytest.fixture(scope="session")
def long_music(media_dir: Path) -> Path:
    return make_audio(media_dir / "long-music.m4a", 8.0, freq=262)


@pytest.fixture(scope="session")
def bad_files(media_dir: Path) -> BadFiles:
    work = media_dir / "bad"
    work.mkdir()
    return make_bad_files(work)


@pytest.fixture
def out_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
