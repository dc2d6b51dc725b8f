"""What the bot accepts as a video, the same on every platform."""

from __future__ import annotations

from pathlib import Path

from core.media.edit import convert_to_mp4, needs_conversion
from core.media.ffmpeg import cpu_slot
from core.media.pool import in_worker
from core.media.probe import PROBE_TIMEOUT, VideoInfo, animated_gif_sync, probe


async def accept_video(path: Path, *, max_seconds: float | None = None) -> tuple[Path, VideoInfo]:
    """Check an arrived video; GIF and Motion-JPEG clips come back converted to H.264 MP4.

    Raises the errors of `probe` (EmptyFile, NotAVideo, UnsupportedFormat,
    TooManyPixels, VideoTooLong…): nothing is decoded past the header of a refused file.
    """
    path = Path(path)
    info = await probe(path, max_seconds=max_seconds)
    if not needs_conversion(info):
        return path, info
    converted = await convert_to_mp4(path, info, path.with_name(f"{path.stem}.h264.mp4"))
    path.unlink(missing_ok=True)
    return converted, await probe(converted, max_seconds=max_seconds)


async def is_animated_gif(path: Path) -> bool:
    """True for a GIF with more than one frame: a clip, whichever way the platform sent it."""
    async with cpu_slot():
        return await in_worker(
            animated_gif_sync, Path(path), timeout=PROBE_TIMEOUT, what="reading the GIF"
        )
