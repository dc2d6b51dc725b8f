"""Fitting a video to a platform's upload limit: H.264/AAC MP4 that starts playing at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python

from core.errors import MediaError
from core.media.ffmpeg import cpu_slot, run_graph
from core.media.frames import THUMBNAIL_QUALITY, frame_at, open_video, upright, write_jpeg
from core.media.pool import in_worker
from core.media.probe import PROBE_TIMEOUT, VideoInfo, probe, probe_sync

MAX_SIDE = 1920  # re-encodes never exceed 1080p
CRF = 23
MIN_BITS_PER_PIXEL = 0.05  # below this a size-targeted encode is downscaled
CRF_BITS_PER_PIXEL = 0.1  # above this a quality (CRF) encode usually fits: try it first
THUMBNAIL_SIDE = 320
SAMPLE_ABOVE_SECONDS = 15.0
SAMPLE_SECONDS = 3.0
_LADDER = (1080, 720, 540, 480, 360, 270, 180, 144)


@dataclass(frozen=True)
class FittedVideo:
    """An MP4 ready to upload, its thumbnail, and what it turned out to be."""

    path: Path
    thumbnail: Path
    duration: float
    width: int
    height: int
    size_bytes: int
    method: str  # "copy" (remuxed as is), "crf" (quality encode) or "target" (size-targeted)


def _even(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def _scaled(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Even dimensions with the aspect kept: long side ≤ MAX_SIDE, short side ≤ `short_side`."""
    factor = min(1.0, MAX_SIDE / max(width, height))
    if short_side is not None:
        factor = min(factor, short_side / min(width, height))
    return _even(width * factor), _even(height * factor)


def remuxable(info: VideoInfo) -> bool:
    """Already H.264 4:2:0 (with AAC or no sound) in even dimensions: MP4 by stream copy."""
    return (
        info.codec == "h264"
        and info.pix_fmt == "yuv420p"
        and info.audio_codec in (None, "aac")
        and info.width % 2 == 0
        and info.height % 2 == 0
        and ("mp4" in info.container or "matroska" in info.container)
    )


def _encode_timeout(duration: float) -> float:
    return 120.0 + 8.0 * duration


def _mp4(source: Any, picture: Any, info: VideoInfo, out: Path, audio_kbps: int,
         **video: object) -> Any:
    """An H.264 (yuv420p, faststart) MP4 output node; AAC stereo when the input has sound."""
    streams = [picture]
    audio: dict[str, object] = {}
    if info.has_audio:
        streams.append(source["a:0?"])
        audio = {"c:a": "aac", "b:a": f"{audio_kbps}k", "ac": 2}
    return ffmpeg_python.output(
        *streams, str(out), **{"c:v": "libx264", "preset": "veryfast", **video, "profile:v": "high",
                               **audio, "pix_fmt": "yuv420p", "movflags": "+faststart", "f": "mp4"},
    )


async def _remux(src: Path, out: Path, info: VideoInfo) -> None:
    source = ffmpeg_python.input(str(src))
    await run_graph(
        ffmpeg_python.output(source["v:0"], source["a:0?"], str(out), c="copy",
                             **{"tag:v": "avc1"}, movflags="+faststart", f="mp4"),
        timeout=_encode_timeout(info.duration),
    )


async def _crf(
    src: Path, out: Path, info: VideoInfo, *, sample: tuple[float, float] | None = None
) -> None:
    width, height = _scaled(info.width, info.height, None)
    window = {"ss": f"{sample[0]:.3f}", "t": f"{sample[1]:.3f}"} if sample else {}
    source = ffmpeg_python.input(str(src), **window)
    picture = (source["v:0"].filter("scale", width, height, flags="bicubic")
               .filter("setsar", 1).filter("fps", fps="min(source_fps,60)"))
    await run_graph(
        _mp4(source, picture, info, out, 128, crf=CRF), timeout=_encode_timeout(info.duration)
    )


async def _targeted(
    src: Path, out: Path, info: VideoInfo, video_bps: float, audio_kbps: int
) -> None:
    fps = min(info.fps or 30.0, 30.0)
    short = min(info.width, info.height)
    for rung in _LADDER:  # the largest size that keeps enough bits per pixel
        width, height = _scaled(info.width, info.height, min(rung, short))
        if video_bps / (width * height * fps) >= MIN_BITS_PER_PIXEL:
            break
    kbps = max(16, int(video_bps / 1000))
    source = ffmpeg_python.input(str(src))
    picture = (source["v:0"].filter("scale", width, height, flags="bicubic")
               .filter("setsar", 1).filter("fps", f"{fps:g}"))
    await run_graph(
        _mp4(source, picture, info, out, audio_kbps,
             **{"b:v": f"{kbps}k", "maxrate": f"{kbps}k", "bufsize": f"{2 * kbps}k"}),
        timeout=_encode_timeout(info.duration),
    )


def _audio_kbps(budget_bps: float) -> int:
    for floor_bps, kbps in ((1_500_000, 128), (600_000, 96), (250_000, 64)):
        if budget_bps >= floor_bps:
            return kbps
    return 32


def _finish_sync(out: Path, thumbnail: Path, method: str) -> FittedVideo:
    info = probe_sync(out, None)
    container, stream = open_video(out)
    with container:
        frame = upright(frame_at(container, stream, min(1.0, info.duration / 2)))
    write_jpeg(frame, thumbnail, max_side=THUMBNAIL_SIDE, quality=THUMBNAIL_QUALITY)
    return FittedVideo(
        path=out,
        thumbnail=thumbnail,
        duration=info.duration,
        width=info.width,
        height=info.height,
        size_bytes=info.size_bytes,
        method=method,
    )


async def _crf_may_fit(src: Path, scratch: Path, info: VideoInfo, max_bytes: int) -> bool:
    """For long videos, encode a few seconds first: skip the full quality encode if it can't fit."""
    if info.duration <= SAMPLE_ABOVE_SECONDS:
        return True
    await _crf(src, scratch, info, sample=(info.duration * 0.4, SAMPLE_SECONDS))
    estimate = scratch.stat().st_size * info.duration / SAMPLE_SECONDS
    return estimate <= max_bytes * 0.9


async def fit_video(path: Path, max_bytes: int, out: Path | None = None) -> FittedVideo:
    """Make an H.264/AAC MP4 (yuv420p, faststart, even size) of at most `max_bytes`.

    Stream copy when the input already qualifies and fits; else a quality
    encode; else a size-targeted encode (downscaled when bits run short).
    Also writes a JPEG thumbnail (≤ 320 px, small) next to the output.
    """
    path = Path(path)
    info = await probe(path)
    out = Path(out) if out is not None else path.with_name(f"{path.stem}.fit.mp4")
    thumbnail = out.with_suffix(".thumb.jpg")
    partial = out.with_name(f".{out.name}.part.mp4")
    async with cpu_slot():
        method = ""
        if remuxable(info) and info.size_bytes <= max_bytes:
            await _remux(path, partial, info)
            if partial.stat().st_size <= max_bytes:
                method = "copy"
        budget = max_bytes * 0.95 * 8 / max(info.duration, 0.1)
        audio_kbps = _audio_kbps(budget)
        video_bps = budget - (audio_kbps * 1000 if info.has_audio else 0)
        width, height = _scaled(info.width, info.height, None)
        fps = min(info.fps or 30.0, 60.0)
        if (
            not method
            and video_bps / (width * height * fps) >= CRF_BITS_PER_PIXEL
            and await _crf_may_fit(path, partial, info, max_bytes)
        ):
            await _crf(path, partial, info)
            if partial.stat().st_size <= max_bytes:
                method = "crf"
        for _ in range(3):
            if method:
                break
            await _targeted(path, partial, info, video_bps, audio_kbps)
            size = partial.stat().st_size
            if size <= max_bytes:
                method = "target"
            else:  # overshot: aim lower by the overshoot and a margin
                video_bps *= 0.85 * max_bytes / size
        if not method:
            partial.unlink(missing_ok=True)
            raise MediaError(f"could not fit {path.name} into {max_bytes} bytes", reason="too big")
        partial.replace(out)
        return await in_worker(
            _finish_sync, out, thumbnail, method, timeout=PROBE_TIMEOUT, what="checking the video"
        )
