"""Single-frame capture: the exact frame shown at a moment of a video, upright, as JPEG."""

from __future__ import annotations

import math
from pathlib import Path

import av.error

from core.errors import CorruptVideo, TimestampOutOfRange
from core.media.ffmpeg import cpu_slot
from core.media.frames import frame_at, open_video, upright, write_jpeg
from core.media.pool import in_worker

CAPTURE_TIMEOUT = 60.0
CAPTURE_MAX_SIDE = 1920  # a 4K frame is scaled to 1920 on its long side


def default_frame_path(video: Path, seconds: float) -> Path:
    return video.with_name(f"{video.stem}.{round(seconds * 1000)}ms.jpg")


def _capture_sync(video: Path, seconds: float, out: Path, max_side: int | None) -> Path:
    try:
        container, stream = open_video(video)
    except av.error.FFmpegError:
        raise CorruptVideo(f"{video.name} cannot be read as a video") from None
    try:
        with container:
            frame = upright(frame_at(container, stream, seconds))
            return write_jpeg(frame, out, max_side=max_side)
    except av.error.FFmpegError as exc:
        raise CorruptVideo(f"{video.name}: decoding failed ({exc.strerror})") from None


async def capture_frame(
    video: Path, t: float, out: Path | None = None, *, max_side: int | None = CAPTURE_MAX_SIDE
) -> Path:
    """Write the frame displayed at `t` seconds as a high-quality JPEG; return its path.

    The frame is exact (pts ≤ t < next pts), turned upright by the rotation
    metadata, and t at or past the last frame gives the last frame.
    """
    video = Path(video)
    if not math.isfinite(t) or t < 0:
        raise TimestampOutOfRange(f"{t!r} is not a time in the video", seconds="-", duration="?")
    target = Path(out) if out is not None else default_frame_path(video, t)
    async with cpu_slot():
        return await in_worker(
            _capture_sync, video, t, target, max_side,
            timeout=CAPTURE_TIMEOUT, what="capturing the frame",
        )
