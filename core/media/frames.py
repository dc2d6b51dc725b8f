"""In-process frame work with PyAV: exact-frame seeking, upright frames, JPEG files.

Synchronous on purpose: callers run these in a media worker process
(`core.media.pool`) while holding a CPU slot.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import av.error
import av.filter
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from core.errors import CorruptVideo

# mjpeg quantiser range: 2–3 is "high quality" (about JPEG quality 90–95)
HIGH_QUALITY = (2, 3)
THUMBNAIL_QUALITY = (5, 8)


def open_video(path: Path) -> tuple[InputContainer, VideoStream]:
    """Open `path` for decoding its first video stream (threaded decoding)."""
    container = av.open(str(path), mode="r")
    if not container.streams.video:
        container.close()
        raise CorruptVideo(f"{path.name} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _target_pts(stream: VideoStream, seconds: float) -> int:
    time_base = stream.time_base or Fraction(1, 90000)
    start = stream.start_time or 0
    # microsecond rounding first, so that 1.28 s is not 1.27999… s
    micros = Fraction(round(seconds * 1_000_000), 1_000_000)
    return start + math.floor(micros / time_base)


def _seek(container: InputContainer, stream: VideoStream, pts: int) -> None:
    try:
        container.seek(pts, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        container.seek(0)  # no usable index: decode from the start


def _scan(
    container: InputContainer, stream: VideoStream, target: int
) -> tuple[VideoFrame | None, VideoFrame | None]:
    """(last frame with pts ≤ target, first frame after it) decoding from the current position."""
    chosen: VideoFrame | None = None
    for frame in container.decode(stream):
        if frame.pts is not None and frame.pts > target:
            return chosen, frame
        chosen = frame
    return chosen, None


def frame_at(container: InputContainer, stream: VideoStream, seconds: float) -> VideoFrame:
    """The frame displayed at `seconds`: pts ≤ t < next pts; past the end, the last frame.

    Seeks to the keyframe before t and decodes forward, so the result is exact.
    """
    time_base = stream.time_base or Fraction(1, 90000)
    start = stream.start_time or 0
    target = _target_pts(stream, seconds)
    seek_to = target
    for attempt in range(4):
        _seek(container, stream, max(seek_to, start))
        chosen, after = _scan(container, stream, target)
        if chosen is not None:
            return chosen
        if seek_to <= start or attempt == 3:
            if after is not None:
                return after  # t lies before the first frame
            break
        # the index put us after t (or nothing decoded): step further back
        seek_to -= int(2 * (attempt + 1) / time_base)
    raise CorruptVideo("no frame of the video could be decoded")


_TRANSPOSE = {90: ("transpose", "cclock"), 270: ("transpose", "clock")}


def rotation_of(frame: VideoFrame) -> int:
    """Counter-clockwise degrees (0, 90, 180, 270) a player turns this frame for display."""
    return round((frame.rotation or 0) / 90) * 90 % 360


def upright(frame: VideoFrame) -> VideoFrame:
    """The frame turned the way a player shows it (display-matrix rotation applied)."""
    rotation = rotation_of(frame)
    if rotation == 0:
        return frame
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=frame.width,
        height=frame.height,
        format=frame.format,
        time_base=frame.time_base or Fraction(1, 25),
    )
    steps = [_TRANSPOSE[rotation]] if rotation in _TRANSPOSE else [("hflip", ""), ("vflip", "")]
    node = source
    for name, arg in steps:
        step = graph.add(name, arg) if arg else graph.add(name)
        node.link_to(step)
        node = step
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    graph.push(frame)
    turned = graph.pull()
    assert isinstance(turned, VideoFrame)
    return turned


def fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down so the long side is at most `max_side` (aspect kept)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def jpeg_bytes(
    frame: VideoFrame, *, max_side: int | None = None, quality: tuple[int, int] = HIGH_QUALITY
) -> bytes:
    """The frame as a baseline JPEG, scaled down to `max_side` if larger."""
    width, height = fit_within(frame.width, frame.height, max_side)
    picture = frame.reformat(width=width, height=height, format="yuvj420p", interpolation="AREA")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuvj420p"
    codec.time_base = Fraction(1, 25)
    codec.qmin, codec.qmax = quality
    packets = codec.encode(picture) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def write_jpeg(
    frame: VideoFrame,
    out: Path,
    *,
    max_side: int | None = None,
    quality: tuple[int, int] = HIGH_QUALITY,
) -> Path:
    """Write the frame to `out` as JPEG atomically (a reader never sees half a file)."""
    data = jpeg_bytes(frame, max_side=max_side, quality=quality)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.part")
    partial.write_bytes(data)
    partial.replace(out)
    return out
