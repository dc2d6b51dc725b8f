"""✨ Sharpest nearby: within ±0.5 s of the chosen moment, the least blurred frame wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import CorruptVideo
from core.media.sharpness import sharpest_near
from tests.media_factory import ffmpeg

FPS = 25


@pytest.fixture(scope="module")
def mostly_blurred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of a detailed test pattern, blurred everywhere except 1.20–1.32 s and 2.60–2.72 s."""
    path = tmp_path_factory.mktemp("sharpness") / "blurred.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=s=320x240:r={FPS}:d=3",
        "-vf", "boxblur=8:2:enable='not(between(t,1.19,1.33)+between(t,2.59,2.73))'",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "12", "-g", "25",
        "-pix_fmt", "yuv420p", path,
    )
    return path


async def test_a_blurred_moment_moves_to_the_sharp_frames_nearby(mostly_blurred: Path):
    best_at, moved_by = await sharpest_near(mostly_blurred, 1.0)
    assert 1.19 <= best_at <= 1.33
    assert moved_by == pytest.approx(best_at - 1.0)


async def test_it_looks_back_as_well_as_forward(mostly_blurred: Path):
    best_at, moved_by = await sharpest_near(mostly_blurred, 1.7)
    assert 1.19 <= best_at <= 1.33 and moved_by < 0


async def test_it_never_moves_further_than_the_window(mostly_blurred: Path):
    # 2.0 s: the sharp frames (1.2 s, 2.6 s) are both more than 0.5 s away
    best_at, moved_by = await sharpest_near(mostly_blurred, 2.0)
    assert abs(moved_by) <= 0.5 + 1 / FPS
    assert not (1.19 <= best_at <= 1.33 or 2.59 <= best_at <= 2.73)


async def test_a_file_that_is_not_a_video_is_a_clear_error(tmp_path: Path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(CorruptVideo):
        await sharpest_near(junk, 1.0)
