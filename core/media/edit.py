"""Cutting clips, converting odd clips to MP4, and putting music under clips.

Command lines are built with ffmpeg-python and run by `run_graph` (argument
lists with a timeout, never a shell); file reading runs in the media workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import av.error
import ffmpeg as ffmpeg_python

from core.errors import MediaError, NotAVideo, TimestampOutOfRange
from core.media.ffmpeg import cpu_slot, run_graph
from core.media.pool import in_worker
from core.media.probe import IMAGE_CODECS, PROBE_TIMEOUT, VideoInfo, probe
from core.media.timestamps import check_in_range, format_timestamp

MUSIC_FADE_SECONDS = 1.5
GLITCH_MAX_SIDE = 1280  # the glitch model takes at most this on the long side
CONVERT_MAX_SIDE = 1920  # GIF / Motion-JPEG clips become at most 1080p H.264


def _timeout(seconds: float) -> float:
    return 120.0 + 8.0 * seconds


def _h264_output(picture: Any, sound: Any, out: Path, **options: object) -> Any:
    """An H.264 (and AAC) faststart MP4 output node."""
    streams = [picture] if sound is None else [picture, sound]
    audio = {} if sound is None else {"c:a": "aac", "b:a": "128k"}
    return ffmpeg_python.output(
        *streams, str(out), **{"c:v": "libx264", "preset": "veryfast", "crf": 20,
                               "pix_fmt": "yuv420p", **audio, "movflags": "+faststart",
                               "f": "mp4", **options},
    )


def _fit_scale(stream: Any, max_side: int | None) -> Any:
    if not max_side:
        return stream.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2")
    return stream.filter(
        "scale", w=f"min(iw,{max_side})", h=f"min(ih,{max_side})",
        force_original_aspect_ratio="decrease", force_divisible_by=2,
    )


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
    rotated videos upright; `max_side` caps the long side (scaled before encoding).
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
    partial = out.with_name(f".{out.name}.part.mp4")
    source = ffmpeg_python.input(str(video), ss=f"{start:.3f}")
    picture = _fit_scale(source["v:0"], max_side).filter("setsar", 1)
    async with cpu_slot():
        await run_graph(
            _h264_output(picture, source["a:0?"], partial, t=f"{length:.3f}"),
            timeout=_timeout(length),
        )
    partial.replace(out)
    return out


def needs_conversion(info: VideoInfo) -> bool:
    """GIF and Motion-JPEG (or other still-picture codec) clips: converted to H.264 MP4."""
    return info.codec in IMAGE_CODECS or info.container == "gif"


async def convert_to_mp4(video: Path, info: VideoInfo, out: Path | None = None) -> Path:
    """Re-encode a GIF / Motion-JPEG clip as H.264 MP4 (≤ 1080p), keeping its sound."""
    video = Path(video)
    out = Path(out) if out is not None else video.with_name(f"{video.stem}.converted.mp4")
    partial = out.with_name(f".{out.name}.part.mp4")
    source = ffmpeg_python.input(str(video))
    picture = _fit_scale(source["v:0"], CONVERT_MAX_SIDE).filter("setsar", 1)
    sound = source["a:0?"] if info.has_audio else None
    async with cpu_slot():
        await run_graph(_h264_output(picture, sound, partial), timeout=_timeout(info.duration))
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


def mux_plan_sync(video: Path, audio: Path) -> float:
    """Check that `audio` has sound; the length of `video`'s picture (runs in a media worker)."""
    _require_audio(audio)
    return _video_stream_seconds(video)


async def mux_music(video: Path, audio: Path, out: Path | None = None) -> Path:
    """Put `audio` under `video`: looped or cut to the video's length with a fade-out.

    The picture is stream-copied bit for bit; the sound becomes AAC; faststart MP4.
    Files are read in a media worker, never on the event loop.
    """
    video, audio = Path(video), Path(audio)
    info = await probe(video)
    if not info.has_video:
        raise NotAVideo(f"{video.name} is not a video")
    out = Path(out) if out is not None else video.with_name(f"{video.stem}.music.mp4")
    partial = out.with_name(f".{out.name}.part.mp4")
    async with cpu_slot():
        seconds = await in_worker(
            mux_plan_sync, video, audio, timeout=PROBE_TIMEOUT, what="reading the music"
        ) or info.duration
        fade = min(MUSIC_FADE_SECONDS, seconds / 4)
        picture = ffmpeg_python.input(str(video))["v:0"]
        sound = ffmpeg_python.input(str(audio), stream_loop=-1)["a:0"].filter(
            "afade", t="in", d=0.05
        ).filter("afade", t="out", st=f"{seconds - fade:.3f}", d=f"{fade:.3f}")
        await run_graph(
            ffmpeg_python.output(
                picture, sound, str(partial),
                **{"c:v": "copy", "c:a": "aac", "b:a": "160k", "ac": 2, "t": f"{seconds:.3f}",
                   "movflags": "+faststart", "f": "mp4"},
            ),
            timeout=_timeout(seconds),
        )
    partial.replace(out)
    return out
