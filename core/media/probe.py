"""What a file is: a playable video (and its shape), or which kind of bad input."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error

from core.errors import (
    AudioOnly,
    CorruptVideo,
    EmptyFile,
    NotAnImage,
    NotAVideo,
    TooManyPixels,
    UnsupportedFormat,
    VideoTooLong,
)
from core.media.ffmpeg import cpu_slot, max_pixels
from core.media.frames import rotation_of
from core.media.pool import in_worker
from core.media.timestamps import format_timestamp

PROBE_TIMEOUT = 60.0

# demuxers/codecs that read still pictures (and text): such files are not videos
_IMAGE_FORMATS = ("image2", "_pipe", "tty", "apng", "webp")
# the video containers accepted (allow-list): mp4/mov/m4v, webm/mkv, avi, gif
_VIDEO_CONTAINERS = ("mov,mp4", "matroska", "avi", "gif")
IMAGE_CODECS = {"png", "mjpeg", "webp", "bmp", "tiff", "gif", "apng", "ansi", "jpeg2000",
                 "jpegls", "jpegxl", "qoi", "ppm", "pgm", "pam", "targa", "svg", "heic", "avif"}


@dataclass(frozen=True)
class VideoInfo:
    """A playable video. `width`/`height` are as displayed (rotation applied)."""

    duration: float
    width: int
    height: int
    rotation: int
    fps: float
    has_video: bool
    has_audio: bool
    codec: str
    size_bytes: int
    pix_fmt: str | None = None
    audio_codec: str | None = None
    container: str = ""


@dataclass(frozen=True)
class ImageInfo:
    """A decodable still picture."""

    width: int
    height: int
    codec: str


def _looks_like_video_container(head: bytes) -> bool:
    """Magic bytes of the usual video containers (so a damaged one is 'corrupt', not 'not a video')."""
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
        or head.startswith(b"\x1a\x45\xdf\xa3")  # Matroska / WebM
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith((b"FLV", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"\x30\x26\xb2\x75"))
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)  # MPEG-TS
    )


def _picture_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header, without decoding anything."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack("!II", head[16:24])
        return width, height
    if head[:6] in (b"GIF87a", b"GIF89a"):
        width, height = struct.unpack("<HH", head[6:10])
        return width, height
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP" and len(head) >= 30:
        kind = head[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
        if kind == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        if kind == b"VP8 ":
            return (int.from_bytes(head[26:28], "little") & 0x3FFF,
                    int.from_bytes(head[28:30], "little") & 0x3FFF)
    if head.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(head):
            if head[at] != 0xFF:
                return None
            marker = head[at + 1]
            if marker == 0xFF:  # fill byte
                at += 1
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                height, width = struct.unpack("!HH", head[at + 5 : at + 9])
                return width, height
            at += 2 + int.from_bytes(head[at + 2 : at + 4], "big")
    return None


def check_pixels(width: int, height: int, limit: int | None) -> None:
    """Raise TooManyPixels when a width × height picture is over `limit` pixels."""
    if limit is not None and width * height > limit:
        raise TooManyPixels(
            f"{width}×{height} is over the {limit}-pixel limit",
            width=width, height=height, limit=round(limit / 1_000_000, 1),
        )


def _open_capped(path: Path, limit: int | None) -> av.container.InputContainer:
    """Open `path`; with a limit, decoders refuse larger pictures instead of allocating them."""
    options = {"max_pixels": str(limit)} if limit is not None else {}
    return av.open(str(path), mode="r", options=options)


def _stated_duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _scan_duration(path: Path) -> float:
    """Duration by reading every packet's timestamp (for files that do not state one)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        end = 0.0
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        start = float((stream.start_time or 0) * (stream.time_base or 0))
        return max(0.0, end - start)


def _truncated(stream: av.video.stream.VideoStream, size: int) -> bool:
    """True when the index points past the end of the file (an interrupted upload)."""
    entries = stream.index_entries
    if not len(entries):
        return False
    last = entries[len(entries) - 1]
    return last.pos + last.size > size


def _ends_early(container: av.container.InputContainer, duration: float) -> bool:
    """True when the packets stop well before the stated duration (a cut-off file).

    Reads packets (no decoding) from shortly before the stated end.
    """
    if duration <= 0:
        return False
    try:
        container.seek(max(0, int((duration - 3.0) * av.time_base)))
    except av.error.FFmpegError:
        return False
    end = 0.0
    try:
        for packet in container.demux():
            if packet.pts is not None and packet.time_base:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.error.FFmpegError:
        return True
    return end < duration * 0.9 - 0.5


def _has_two_frames(path: Path) -> bool:
    with av.open(str(path)) as container:
        packets = (p for p in container.demux(container.streams.video[0]) if p.size)
        for index, _ in enumerate(packets):
            if index >= 1:
                return True
    return False


def animated_gif_sync(path: Path) -> bool:
    """True for a GIF file with at least two frames (runs in a media worker)."""
    with path.open("rb") as handle:
        if handle.read(6) not in (b"GIF87a", b"GIF89a"):
            return False
    try:
        return _has_two_frames(path)
    except (av.error.FFmpegError, IndexError):
        return False


def probe_sync(path: Path, max_seconds: float | None, max_pixels: int | None = None) -> VideoInfo:
    """`probe` without the worker and CPU slot (runs in a media worker)."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{path.name} is empty (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(256 * 1024)
    stated = _picture_size(head)
    if stated is not None:
        check_pixels(*stated, max_pixels)
    try:
        container = _open_capped(path, max_pixels)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        if _looks_like_video_container(head):
            raise CorruptVideo(f"{path.name} is a damaged or incomplete video") from None
        raise NotAVideo(f"{path.name} is not a video") from None
    with container:
        format_name = container.format.name
        videos = container.streams.video
        audios = container.streams.audio
        video = videos[0] if videos else None
        codec = video.codec_context.name if video is not None else ""
        if video is None and audios:
            raise AudioOnly(f"{path.name} has sound but no picture")
        if video is None or any(marker in format_name for marker in _IMAGE_FORMATS):
            raise NotAVideo(f"{path.name} is not a video ({format_name})")
        if not any(name in format_name for name in _VIDEO_CONTAINERS):
            raise UnsupportedFormat(
                f"{path.name}: {format_name} is not an accepted container", format=format_name
            )
        if format_name == "gif" and not _has_two_frames(path):
            raise NotAVideo(f"{path.name} is a still GIF, not a clip")
        check_pixels(video.codec_context.width, video.codec_context.height, max_pixels)
        if _truncated(video, size):
            raise CorruptVideo(f"{path.name} is cut short (an incomplete download?)")
        video.thread_type = "AUTO"
        try:
            first = next(iter(container.decode(video)), None)
        except (av.error.FFmpegError, ValueError):
            first = None
        if first is None:
            raise CorruptVideo(f"{path.name}: no frame can be decoded")
        check_pixels(first.width, first.height, max_pixels)
        rotation = rotation_of(first)
        duration = _stated_duration(container, video)
        if _ends_early(container, duration):
            raise CorruptVideo(f"{path.name} stops before its end (an incomplete download?)")
        rate = video.average_rate or video.guessed_rate or video.base_rate or Fraction(0)
        width, height = first.width, first.height
        audio_codec = audios[0].codec_context.name if audios else None
        pix_fmt = video.codec_context.format.name if video.codec_context.format else None
    if duration <= 0:
        duration = _scan_duration(path)
    if rotation in (90, 270):
        width, height = height, width
    if max_seconds is not None and duration > max_seconds + 0.05:
        raise VideoTooLong(
            f"{path.name} is {format_timestamp(duration)} long (limit {format_timestamp(max_seconds)})",
            duration=format_timestamp(duration),
            limit=format_timestamp(max_seconds),
        )
    return VideoInfo(
        duration=round(duration, 3),
        width=width,
        height=height,
        rotation=rotation,
        fps=round(float(rate), 3),
        has_video=True,
        has_audio=audio_codec is not None,
        codec=codec,
        size_bytes=size,
        pix_fmt=pix_fmt,
        audio_codec=audio_codec,
        container=format_name,
    )


async def probe(path: Path, *, max_seconds: float | None = None) -> VideoInfo:
    """Check that `path` is a playable video and describe it.

    Raises EmptyFile, NotAVideo, AudioOnly, CorruptVideo, UnsupportedFormat (not
    an accepted container), TooManyPixels (over MAX_PIXELS, from the header,
    before decoding), or VideoTooLong (when longer than `max_seconds`).
    """
    async with cpu_slot():
        return await in_worker(
            probe_sync, Path(path), max_seconds, max_pixels(),
            timeout=PROBE_TIMEOUT, what="reading the video",
        )


def probe_image_sync(path: Path, max_pixels: int | None = None) -> ImageInfo:
    """`probe_image` without the worker and CPU slot (runs in a media worker)."""
    if path.stat().st_size == 0:
        raise EmptyFile(f"{path.name} is empty (0 bytes)")
    with path.open("rb") as handle:
        stated = _picture_size(handle.read(256 * 1024))
    if stated is not None:
        check_pixels(*stated, max_pixels)
    try:
        with _open_capped(path, max_pixels) as container:
            if not container.streams.video:
                raise NotAnImage(f"{path.name} is not a picture")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in IMAGE_CODECS - {"ansi"}:
                raise NotAnImage(f"{path.name} is not a picture ({codec})")
            check_pixels(stream.codec_context.width, stream.codec_context.height, max_pixels)
            frame = next(iter(container.decode(stream)), None)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, StopIteration):
        raise NotAnImage(f"{path.name} is not a picture") from None
    if frame is None or frame.width < 2 or frame.height < 2:
        raise NotAnImage(f"{path.name} is not a picture")
    check_pixels(frame.width, frame.height, max_pixels)
    return ImageInfo(width=frame.width, height=frame.height, codec=codec)


async def probe_image(path: Path) -> ImageInfo:
    """Check that `path` is a decodable photo (JPEG, PNG, WebP…).

    Raises NotAnImage, or TooManyPixels (over MAX_PIXELS, from the header, before decoding).
    """
    async with cpu_slot():
        return await in_worker(
            probe_image_sync, Path(path), max_pixels(),
            timeout=PROBE_TIMEOUT, what="reading the picture",
        )
