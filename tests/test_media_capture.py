"""Capture: the frame a user asked for is exactly the one they get, upright."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import CorruptVideo, TimestampOutOfRange
from core.media import capture_frame
from tests.media_factory import COUNTER_FPS, BadFiles, first_frame, mean_rgb


def _closest_frame(level: float, levels: list[float]) -> int:
    return min(range(len(levels)), key=lambda index: abs(levels[index] - level))


@pytest.mark.parametrize(
    ("seconds", "index"),
    [
        (0.0, 0),
        (0.5, 12),
        (1.28, 32),  # exactly on a frame's timestamp: that frame
        (1.2799, 31),  # a hair before it: the previous one
        (1.3, 32),
        (1.99, 49),  # just before the 2 s keyframe: decoded from the 0 s keyframe
        (2.0, 50),
        (3.01, 75),
        (3.96, 99),
        (3.999, 99),
        (4.0, 99),  # the end, and past it: the last frame
        (60.0, 99),
    ],
)
async def test_the_captured_frame_is_the_frame_shown_at_that_time(
    counter_video: Path, counter_levels: list[float], out_dir: Path, seconds: float, index: int
) -> None:
    assert index == int(seconds * COUNTER_FPS + 1e-9) or seconds >= 3.96
    jpeg = await capture_frame(counter_video, seconds, out_dir / "frame.jpg")
    picture = first_frame(jpeg)
    assert (picture.width, picture.height) == (320, 240)
    level = mean_rgb(picture)[0]
    assert _closest_frame(level, counter_levels) == index
    assert abs(level - counter_levels[index]) < 2.5  # the same picture, not a neighbour


async def test_a_phone_video_is_captured_upright(rotated_video: Path, out_dir: Path) -> None:
    picture = first_frame(await capture_frame(rotated_video, 0.5, out_dir / "upright.jpg"))
    assert (picture.width, picture.height) == (240, 320)
    red, green, blue = mean_rgb(picture, (100, 90, 40, 40))  # upper half, right of the square
    assert red > 200 and blue < 60
    red, green, blue = mean_rgb(picture, (100, 250, 40, 40))  # lower half
    assert blue > 200 and red < 60
    red, green, blue = mean_rgb(picture, (10, 10, 30, 30))  # the square stays top-left
    assert green > 200 and red < 60


async def test_the_default_file_sits_next_to_the_video(counter_video: Path) -> None:
    jpeg = await capture_frame(counter_video, 1.5)
    try:
        assert jpeg.parent == counter_video.parent and jpeg.suffix == ".jpg"
        assert jpeg.read_bytes()[:2] == b"\xff\xd8"
    finally:
        jpeg.unlink()


async def test_a_negative_time_is_refused(counter_video: Path) -> None:
    with pytest.raises(TimestampOutOfRange):
        await capture_frame(counter_video, -1.0)


async def test_a_broken_file_is_a_typed_error(bad_files: BadFiles, out_dir: Path) -> None:
    with pytest.raises(CorruptVideo):
        await capture_frame(bad_files.truncated, 0.5, out_dir / "x.jpg")
