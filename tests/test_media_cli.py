"""`python -m bot capture` and `python -m bot sheet`."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.commands import media
from core.errors import LokizError, NotAVideo, TimestampInvalid, TimestampOutOfRange
from core.settings import Settings
from tests.media_factory import BadFiles, first_frame


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bot")
    media.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def test_capture_prints_the_path_of_the_frame(
    counter_video: Path, tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frame.jpg"
    args = _parse("capture", str(counter_video), "0:01.5", "-o", str(out))
    assert await args.handler(args, settings) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert first_frame(out).width == 320


async def test_sheet_prints_the_path_and_times(
    counter_video: Path, tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sheet.jpg"
    args = _parse("sheet", str(counter_video), "-o", str(out))
    assert await args.handler(args, settings) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == str(out) and printed[1].startswith("times: 0:00.2 ")


@pytest.mark.parametrize(
    ("at", "error"), [("soon", TimestampInvalid), ("-3", TimestampInvalid), ("9s", TimestampOutOfRange)]
)
async def test_a_bad_time_is_a_clear_error(
    counter_video: Path, settings: Settings, at: str, error: type[LokizError]
) -> None:
    args = _parse("capture", str(counter_video), at)
    with pytest.raises(error):
        await args.handler(args, settings)


async def test_bad_files_are_clear_errors(bad_files: BadFiles, settings: Settings) -> None:
    args = _parse("sheet", str(bad_files.text))
    with pytest.raises(NotAVideo):
        await args.handler(args, settings)
    args = _parse("capture", "/nonexistent/video.mp4", "1")
    with pytest.raises(LokizError, match="no such file"):
        await args.handler(args, settings)
