"""✨ Sharpest nearby: the least blurred frame within ±0.5 s of a chosen moment.

Each frame's sharpness is the variance of the Laplacian of its luma (a blurred frame
has few edges, so a low variance), on a copy scaled to at most SCORE_WIDTH wide.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av.error
import numpy as np

from core.errors import CorruptVideo, TimestampOutOfRange
from core.media.ffmpeg import cpu_slot
from core.media.frames import _seek, _target_pts, open_video
from core.media.pool import in_worker

SHARPEST_TIMEOUT = 60.0
DEFAULT_WINDOW = 0.5
SCORE_WIDTH = 480  # enough detail to tell blur apart, cheap at any source size


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D luma array (higher: sharper)."""
    plane = luma.astype(np.float32)
    if plane.shape[0] < 3 or plane.shape[1] < 3:
        return 0.0
    centre = plane[1:-1, 1:-1]
    lap = plane[:-2, 1:-1] + plane[2:, 1:-1] + plane[1:-1, :-2] + plane[1:-1, 2:] - 4 * centre
    return float(lap.var())


def _sharpest_sync(video: Path, at: float, window: float) -> tuple[float, float]:
    try:
        container, stream = open_video(video)
    except av.error.FFmpegError:
        raise CorruptVideo(f"{video.name} cannot be read as a video") from None
    time_base = stream.time_base or Fraction(1, 90000)
    start = stream.start_time or 0
    low, high = _target_pts(stream, max(0.0, at - window)), _target_pts(stream, at + window)
    best: tuple[float, float, float] | None = None  # (score, -distance, seconds)
    try:
        with container:
            _seek(container, stream, max(low, start))
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if frame.pts > high:
                    break
                seconds = float((frame.pts - start) * time_base)
                if frame.pts < low:
                    continue
                width = min(SCORE_WIDTH, frame.width)
                height = max(3, round(frame.height * width / frame.width))
                luma = frame.reformat(width=width, height=height, format="gray").to_ndarray()
                candidate = (round(laplacian_variance(luma), 3), -abs(seconds - at), seconds)
                if best is None or candidate > best:
                    best = candidate
    except av.error.FFmpegError as exc:
        raise CorruptVideo(f"{video.name}: decoding failed ({exc.strerror})") from None
    if best is None:  # no frame starts inside the window: keep the moment as it is
        return at, 0.0
    return best[2], best[2] - at


async def sharpest_near(
    video: Path, at: float, window: float = DEFAULT_WINDOW
) -> tuple[float, float]:
    """(best_at, moved_by): the time of the sharpest frame within ±`window` s of `at`,
    and how far that is from `at` (negative: earlier). Ties go to the nearer frame.

    Runs in a media worker process under a CPU slot, like frame capture.
    """
    video = Path(video)
    if not math.isfinite(at) or at < 0:
        raise TimestampOutOfRange(f"{at!r} is not a time in the video", seconds="-", duration="?")
    async with cpu_slot():
        return await in_worker(
            _sharpest_sync, video, float(at), float(window),
            timeout=SHARPEST_TIMEOUT, what="finding the sharpest frame",
        )
