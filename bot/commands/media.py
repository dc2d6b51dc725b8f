"""`python -m bot capture VIDEO AT [-o OUT.jpg]` and `python -m bot sheet VIDEO [-o OUT.jpg]`.

The same code path as the bots: probe (typed errors), then capture or sheet.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.errors import MediaError
from core.media import (
    capture_frame,
    check_in_range,
    configure,
    contact_sheet,
    format_timestamp,
    parse_timestamp,
    probe,
)
from core.settings import Settings


def register(subparsers: Any) -> None:
    capture = subparsers.add_parser("capture", help="save the frame of VIDEO shown at time AT")
    capture.add_argument("video", type=Path, metavar="VIDEO")
    capture.add_argument("at", metavar="AT", help="a time: 5.5, 0:05.5, 1:02:03.25, 1m2.5s, 83s")
    capture.add_argument("-o", "--out", type=Path, metavar="OUT.jpg", help="where to write it")
    capture.set_defaults(handler=handle_capture)

    sheet = subparsers.add_parser("sheet", help="save a contact sheet (3×3 labelled frames)")
    sheet.add_argument("video", type=Path, metavar="VIDEO")
    sheet.add_argument("-o", "--out", type=Path, metavar="OUT.jpg", help="where to write it")
    sheet.set_defaults(handler=handle_sheet)


def _existing(video: Path) -> Path:
    if not video.is_file():
        raise MediaError(f"{video}: no such file")
    return video


async def handle_capture(args: argparse.Namespace, settings: Settings) -> int:
    configure(ffmpeg_binary=settings.ffmpeg_binary)
    seconds = parse_timestamp(args.at)
    video = _existing(args.video)
    info = await probe(video, max_seconds=settings.max_video_seconds)
    check_in_range(seconds, info.duration)
    path = await capture_frame(video, seconds, args.out)
    print(path)
    return 0


async def handle_sheet(args: argparse.Namespace, settings: Settings) -> int:
    configure(ffmpeg_binary=settings.ffmpeg_binary)
    video = _existing(args.video)
    await probe(video, max_seconds=settings.max_video_seconds)
    sheet = await contact_sheet(video, out=args.out)
    print(sheet.path)
    print("times:", " ".join(format_timestamp(t) for t in sheet.times))
    return 0
