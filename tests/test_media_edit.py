"""Trimming template clips and putting music under a clip."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path

import av
import pytest

from core.errors import MediaError, TimestampOutOfRange
from core.media import mux_music, probe, trim_clip
from core.media.pool import media_pool
from tests.media_factory import all_frames, audio_seconds, mean_rgb, video_packets


async def test_a_trim_starts_on_the_exact_frame(
    counter_video: Path, counter_levels: list[float], out_dir: Path
) -> None:
    clip = await trim_clip(counter_video, 1.0, 2.0, out_dir / "trim.mp4")
    info = await probe(clip)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.codec == "h264"
    frames = all_frames(clip)
    assert len(frames) == 50
    # 1.0 s is frame 25 (not on a keyframe): the clip starts there and ends at frame 74
    assert mean_rgb(frames[0])[0] == pytest.approx(counter_levels[25], abs=2.5)
    assert mean_rgb(frames[-1])[0] == pytest.approx(counter_levels[74], abs=2.5)


async def test_a_trim_keeps_the_sound_and_stops_at_the_end(av_video: Path, out_dir: Path) -> None:
    clip = await trim_clip(av_video, 2.0, 10.0, out_dir / "tail.mp4")
    info = await probe(clip)
    assert info.has_audio
    assert info.duration == pytest.approx(1.0, abs=0.1)


async def test_a_trim_past_the_end_is_refused(av_video: Path, out_dir: Path) -> None:
    with pytest.raises(TimestampOutOfRange):
        await trim_clip(av_video, 30.0, 10.0, out_dir / "none.mp4")


async def test_music_is_looped_under_the_clip_with_the_picture_untouched(
    av_video: Path, short_music: Path, out_dir: Path
) -> None:
    out = await mux_music(av_video, short_music, out_dir / "looped.mp4")
    assert video_packets(out) == video_packets(av_video)  # bit for bit
    info = await probe(out)
    assert info.audio_codec == "aac"
    assert audio_seconds(out) == pytest.approx(3.0, abs=0.1)  # a 1 s tune, looped


async def test_long_music_is_cut_with_a_fade_out(
    av_video: Path, long_music: Path, out_dir: Path
) -> None:
    out = await mux_music(av_video, long_music, out_dir / "cut.mp4")
    assert video_packets(out) == video_packets(av_video)
    assert audio_seconds(out) == pytest.approx(3.0, abs=0.1)

    def loudness(start: float, end: float) -> float:
        total, count = 0.0, 0
        with av.open(str(out)) as container:
            for frame in container.decode(audio=0):
                if frame.time is not None and start <= frame.time < end:
                    plane = bytes(frame.planes[0])
                    values = memoryview(plane).cast("f")
                    total += sum(abs(v) for v in values[: frame.samples])
                    count += frame.samples
        return total / max(count, 1)

    assert loudness(2.75, 3.0) < 0.5 * loudness(0.5, 1.5)


async def test_music_without_sound_is_refused(
    av_video: Path, out_dir: Path, counter_video: Path
) -> None:
    with pytest.raises(MediaError):
        await mux_music(av_video, counter_video, out_dir / "silent.mp4")


async def test_mux_music_keeps_the_event_loop_free_while_it_reads_the_music(
    av_video: Path, out_dir: Path
) -> None:
    # the music is a pipe nobody writes to yet: reading it blocks whoever reads it
    music = out_dir / "music.m4a"
    os.mkfifo(music)
    rescued = threading.Event()

    def rescue() -> None:  # only runs if the event loop itself is stuck reading the pipe
        rescued.set()
        with contextlib.suppress(OSError):
            os.close(os.open(music, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(30, rescue)
    timer.start()
    task = asyncio.create_task(mux_music(av_video, music, out_dir / "muxed.mp4"))
    writer = None
    try:
        while writer is None and not task.done():
            try:  # succeeds once a reader has the pipe open
                writer = os.open(music, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                await asyncio.sleep(0.02)
        assert not rescued.is_set(), "the event loop was blocked while the music was read"
        assert writer is not None and not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert media_pool().busy == 0  # the worker reading the pipe was let go
    finally:
        timer.cancel()
        if writer is not None:
            os.close(writer)
