"""Contact sheets: one picture with a grid of frames, each labelled with its time."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av.error
from av.video.frame import VideoFrame

from core.errors import CorruptVideo
from core.media.ffmpeg import cpu_slot
from core.media.frames import fit_within, frame_at, open_video, upright, write_jpeg
from core.media.pool import in_worker
from core.media.probe import probe_sync
from core.media.timestamps import format_timestamp

SHEET_TIMEOUT = 120.0
TILE_LONG_SIDE = 400
GAP = 6
BACKGROUND = (18, 18, 18)

# A 5×7 bitmap font for the characters of a time label; no font files needed.
_FONT: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
}
_GLYPH_W, _GLYPH_H = 5, 7
_DARKEN = bytes(v * 3 // 10 for v in range(256))


@dataclass(frozen=True)
class ContactSheet:
    """The sheet image and the time (seconds) of each tile, row by row."""

    path: Path
    times: tuple[float, ...]
    columns: int = 3
    rows: int = 3


def sheet_times(duration: float, n: int) -> tuple[float, ...]:
    """`n` evenly spaced times (tile centres of equal slices), to the tenth of a second."""
    return tuple(round(duration * (i + 0.5) / n, 1) for i in range(n))


class _Canvas:
    """An RGB24 picture in a bytearray, with just the drawing the sheet needs."""

    def __init__(self, width: int, height: int, colour: tuple[int, int, int]) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(colour) * (width * height))

    def paste(self, frame: VideoFrame, x: int, y: int) -> None:
        rgb = frame.reformat(format="rgb24")
        plane = rgb.planes[0]
        data, stride, row = bytes(plane), plane.line_size, rgb.width * 3
        for line in range(rgb.height):
            at = ((y + line) * self.width + x) * 3
            self.pixels[at : at + row] = data[line * stride : line * stride + row]

    def darken(self, x: int, y: int, w: int, h: int) -> None:
        for line in range(y, y + h):
            at = (line * self.width + x) * 3
            self.pixels[at : at + w * 3] = self.pixels[at : at + w * 3].translate(_DARKEN)

    def fill(self, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
        run = bytes(colour) * w
        for line in range(y, y + h):
            at = (line * self.width + x) * 3
            self.pixels[at : at + w * 3] = run

    def text(self, label: str, x: int, y: int, scale: int) -> None:
        for index, char in enumerate(label):
            left = x + index * (_GLYPH_W + 1) * scale
            for row, bits in enumerate(_FONT[char]):
                for col, bit in enumerate(bits):
                    if bit == "1":
                        self.fill(left + col * scale, y + row * scale, scale, scale, (255, 255, 255))

    def frame(self) -> VideoFrame:
        frame = VideoFrame(self.width, self.height, "rgb24")
        plane = frame.planes[0]
        row = self.width * 3
        if plane.line_size == row:
            plane.update(bytes(self.pixels))
        else:
            padding = bytes(plane.line_size - row)
            plane.update(b"".join(
                bytes(self.pixels[line * row : (line + 1) * row]) + padding
                for line in range(self.height)
            ))
        return frame


def _label(canvas: _Canvas, label: str, x: int, y: int, tile_w: int, tile_h: int) -> None:
    scale = max(2, min(tile_w, tile_h) // 70)
    pad = scale * 2
    text_w = len(label) * (_GLYPH_W + 1) * scale - scale
    box_w, box_h = text_w + 2 * pad, _GLYPH_H * scale + 2 * pad
    box_x, box_y = x + pad, y + tile_h - box_h - pad
    canvas.darken(box_x, box_y, min(box_w, tile_w - pad), box_h)
    canvas.text(label, box_x + pad, box_y + pad, scale)


def _sheet_sync(video: Path, n: int, out: Path) -> ContactSheet:
    info = probe_sync(video, None)
    times = sheet_times(info.duration, n)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    tile_w, tile_h = fit_within(info.width, info.height, TILE_LONG_SIDE)
    if max(info.width, info.height) < TILE_LONG_SIDE:  # small videos: scale tiles up
        factor = TILE_LONG_SIDE / max(info.width, info.height)
        tile_w, tile_h = round(info.width * factor), round(info.height * factor)
    canvas = _Canvas(
        columns * tile_w + (columns + 1) * GAP, rows * tile_h + (rows + 1) * GAP, BACKGROUND
    )
    try:
        container, stream = open_video(video)
        with container:
            for index, seconds in enumerate(times):
                frame = upright(frame_at(container, stream, seconds))
                tile = frame.reformat(width=tile_w, height=tile_h, interpolation="AREA")
                x = GAP + (index % columns) * (tile_w + GAP)
                y = GAP + (index // columns) * (tile_h + GAP)
                canvas.paste(tile, x, y)
                _label(canvas, format_timestamp(seconds), x, y, tile_w, tile_h)
    except av.error.FFmpegError as exc:
        raise CorruptVideo(f"{video.name}: decoding failed ({exc.strerror})") from None
    write_jpeg(canvas.frame(), out)
    return ContactSheet(path=out, times=times, columns=columns, rows=rows)


async def contact_sheet(video: Path, n: int = 9, out: Path | None = None) -> ContactSheet:
    """One JPEG grid (3×3 for 9) of frames at evenly spaced times, each labelled with its time."""
    if not 1 <= n <= 36:
        raise ValueError("a contact sheet has 1 to 36 tiles")
    video = Path(video)
    target = Path(out) if out is not None else video.with_name(f"{video.stem}.sheet.jpg")
    async with cpu_slot():
        return await in_worker(
            _sheet_sync, video, n, target, timeout=SHEET_TIMEOUT, what="making the contact sheet"
        )


__all__ = ["ContactSheet", "contact_sheet", "sheet_times"]
