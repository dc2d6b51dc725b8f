"""Cutting clips and putting music under them."""

from __future__ import annotations

from pathlib import Path

import av
import av.error

from core.errors import MediaError, NotAVideo, TimestampOutOfRange
from core.media.ffmpeg import cpu_slot, run_ffmpeg
from core.media.probe import probe
from core.media.timestamps import check_in_range, format_timestamp

MUSIC_FADE_SECONDS = 1.5


def _timeout(seconds: float) -> float:
    return 120.0 + 8.0 * seconds


async def trim_clip(
    video: Path,
    start: float,
    max_seconds: float,
    out: Path | None = None,
    *,
    max_side: int | None = None,
) -> Path:
    """Cut at most `max_seconds` from `start` (frame-accurate), as an H.264/AAC MP4.

    Re-encodes so the cut is exact; keeps the sound if there is one; turns
    rotated videos upright; `max_side` caps the long side.
    """
    video = Path(video)
    info = await probe(video)
    check_in_range(start, info.duration)
    length = min(max_seconds, info.duration - start)
    if length <= 0.01:
        raise TimestampOutOfRange(
            "nothing left after the start",
            seconds=format_timestamp(start),
            duration=format_timestamp(info.duration),
        )
    out = Path(out) if out is not None else video.with_name(
        f"{video.stem}.trim{round(start * 1000)}.mp4"
    )
    scale = "scale=trunc(iw/2)*2:trunc(ih/2)*2"
    if max_side:
        scale = (
            f"scale=w='min(iw,{max_side})':h='min(ih,{max_side})'"
            ":force_original_aspect_ratio=decrease:force_divisible_by=2"
        )
    partial = out.with_name(f".{out.name}.part.mp4")
    async with cpu_slot():
        await run_ffmpeg(
            ["-ss", f"{start:.3f}", "-i", video, "-t", f"{length:.3f}",
             "-map", "0:v:0", "-map", "0:a:0?", "-vf", f"{scale},setsar=1",
             "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", partial],
            timeout=_timeout(length),
        )
    partial.replace(out)
    return out


def _video_stream_seconds(video: Path) -> float:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        return (container.duration or 0) / av.time_base


def _require_audio(audio: Path) -> None:
    try:
        with av.open(str(audio)) as container:
            if not container.streams.audio:
                raise MediaError(f"{audio.name} has no sound", reason="no audio")
    except av.error.FFmpegError:
        raise MediaError(f"{audio.name} is not an audio file", reason="not audio") from None


async def mux_music(video: Path, audio: Path, out: Path | None = None) -> Path:
    """Put `audio` under `video`: looped or cut to the video's length with a fade-out.

    The picture is stream-copied bit for bit; the sound becomes AAC; faststart MP4.
    """
    video, audio = Path(video), Path(audio)
    info = await probe(video)
    if not info.has_video:
        raise NotAVideo(f"{video.name} is not a video")
    out = Path(out) if out is not None else video.with_name(f"{video.stem}.music.mp4")
    partial = out.with_name(f".{out.name}.part.mp4")
    async with cpu_slot():
        _require_audio(audio)
        seconds = _video_stream_seconds(video) or info.duration
        fade = min(MUSIC_FADE_SECONDS, seconds / 4)
        await run_ffmpeg(
            ["-i", video, "-stream_loop", "-1", "-i", audio,
             "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
             "-af", f"afade=t=in:d=0.05,afade=t=out:st={seconds - fade:.3f}:d={fade:.3f}",
             "-c:a", "aac", "-b:a", "160k", "-ac", "2", "-t", f"{seconds:.3f}",
             "-movflags", "+faststart", "-f", "mp4", partial],
            timeout=_timeout(seconds),
        )
    partial.replace(out)
    return out
