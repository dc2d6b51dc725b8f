"""Contact sheets: a grid of the video's moments, each tile being the frame at its label."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.media import contact_sheet
from core.media.sheet import GAP, sheet_times
from tests.media_factory import first_frame, mean_rgb


def test_times_are_evenly_spread_over_the_video() -> None:
    assert sheet_times(9.0, 9) == (0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5)
    assert sheet_times(4.0, 4) == (0.5, 1.5, 2.5, 3.5)


async def test_a_sheet_is_a_three_by_three_grid_of_the_frames_at_its_times(
    counter_video: Path, counter_levels: list[float], out_dir: Path
) -> None:
    sheet = await contact_sheet(counter_video, out=out_dir / "sheet.jpg")
    assert sheet.times == (0.2, 0.7, 1.1, 1.6, 2.0, 2.4, 2.9, 3.3, 3.8)
    assert (sheet.columns, sheet.rows) == (3, 3)
    picture = first_frame(sheet.path)
    tile_w, tile_h = 400, 300  # 320×240 tiles are scaled up to 400 px
    assert (picture.width, picture.height) == (3 * tile_w + 4 * GAP, 3 * tile_h + 4 * GAP)
    for index, seconds in enumerate(sheet.times):
        x = GAP + (index % 3) * (tile_w + GAP)
        y = GAP + (index // 3) * (tile_h + GAP)
        level = mean_rgb(picture, (x + 150, y + 40, 100, 100))[0]  # away from the label
        expected = counter_levels[int(seconds * 25 + 1e-9)]
        assert level == pytest.approx(expected, abs=3)


async def test_labels_are_drawn_on_each_tile(counter_video: Path, out_dir: Path) -> None:
    picture = first_frame((await contact_sheet(counter_video, out=out_dir / "s.jpg")).path)
    # the label box is dark with white digits: both extremes appear in its corner
    corner = mean_rgb(picture, (GAP + 10, GAP + 300 - 40, 90, 30))
    plain = mean_rgb(picture, (GAP + 150, GAP + 40, 90, 30))
    assert corner != pytest.approx(plain, abs=5)


async def test_a_phone_video_sheet_has_upright_tiles(rotated_video: Path, out_dir: Path) -> None:
    sheet = await contact_sheet(rotated_video, n=4, out=out_dir / "phone.jpg")
    picture = first_frame(sheet.path)
    tile_w, tile_h = 300, 400
    assert (picture.width, picture.height) == (2 * tile_w + 3 * GAP, 2 * tile_h + 3 * GAP)
    red, _, blue = mean_rgb(picture, (GAP + 150, GAP + 100, 50, 50))
    assert red > 200 and blue < 60
