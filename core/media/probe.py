"""What a file is: a playable video (and its shape), or which kind of bad input."""

from __future__ import annotations

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
    VideoTooLong,
)
from core.media.ffmpeg import cpu_slot
from core.media.frames import rotation_of
from core.media.pool import in_worker
from core.media.timestamps import format_timestamp

PROBE_TIMEOUT = 60.0

# demuxers/codecs that read still pictures (and text): such files are not videos
_IMAGE_FORMATS = ("image2", "_pipe", "tty", "gif", "apng", "webp")
_IMAGE_CODECS = {"png", "mjpeg", "webp", "bmp", "tiff", "gif", "apng", "ansi", "jpeg2000",
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


def probe_sync(path: Path, max_seconds: float | None) -> VideoInfo:
    """`probe` without the thread and CPU slot, for code already running in both."""
    size = path.stat().st_size
    if size == 0:
        raise EmptyFile(f"{path.name} is empty (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(512)
    try:
        container = av.open(str(path), mode="r")
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
        if video is None or codec in _IMAGE_CODECS or any(
            marker in format_name for marker in _IMAGE_FORMATS
        ):
            if video is None and audios:
                raise AudioOnly(f"{path.name} has sound but no picture")
            raise NotAVideo(f"{path.name} is not a video ({format_name})")
        if _truncated(video, size):
            raise CorruptVideo(f"{path.name} is cut short (an incomplete download?)")
        video.thread_type = "AUTO"
        try:
            first = next(iter(container.decode(video)), None)
        except (av.error.FFmpegError, ValueError):
            first = None
        if first is None:
            raise CorruptVideo(f"{path.name}: no frame can be decoded")
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

    Raises EmptyFile, NotAVideo, AudioOnly, CorruptVideo, or VideoTooLong
    (when longer than `max_seconds`).
    """
    async with cpu_slot():
        return await in_worker(
            probe_sync, Path(path), max_seconds, timeout=PROBE_TIMEOUT, what="reading the video"
        )


def probe_image_sync(path: Path) -> ImageInfo:
    """`probe_image` without the thread and CPU slot, for code already running in both."""
    if path.stat().st_size == 0:
        raise EmptyFile(f"{path.name} is empty (0 bytes)")
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.video:
                raise NotAnImage(f"{path.name} is not a picture")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in _IMAGE_CODECS - {"ansi"}:
                raise NotAnImage(f"{path.name} is not a picture ({codec})")
            frame = next(iter(container.decode(stream)), None)
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, StopIteration):
        raise NotAnImage(f"{path.name} is not a picture") from None
    if frame is None or frame.width < 2 or frame.height < 2:
        raise NotAnImage(f"{path.name} is not a picture")
    return ImageInfo(width=frame.width, height=frame.height, codec=codec)


async def probe_image(path: Path) -> ImageInfo:
    """Check that `path` is a decodable photo (JPEG, PNG, WebP…); raises NotAnImage."""
    async with cpu_slot():
        return await in_worker(
            probe_image_sync, Path(path), timeout=PROBE_TIMEOUT, what="reading the picture"
        )
