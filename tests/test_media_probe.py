"""Probing: a real video is described; every kind of bad file gets its own answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import (
    AudioOnly,
    CorruptVideo,
    EmptyFile,
    MediaError,
    NotAnImage,
    NotAVideo,
    VideoTooLong,
)
from core.i18n import t
from core.media import probe, probe_image
from tests.media_factory import BadFiles


async def test_a_video_is_described(av_video: Path) -> None:
    info = await probe(av_video)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert (info.width, info.height, info.rotation) == (320, 240, 0)
    assert info.fps == pytest.approx(25)
    assert info.has_video and info.has_audio
    assert (info.codec, info.audio_codec, info.pix_fmt) == ("h264", "aac", "yuv420p")
    assert info.size_bytes == av_video.stat().st_size


async def test_a_phone_video_reports_its_upright_size(rotated_video: Path) -> None:
    info = await probe(rotated_video)
    assert (info.width, info.height) == (240, 320)
    assert info.rotation == 270


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("empty", EmptyFile),
        ("text", NotAVideo),
        ("image", NotAVideo),
        ("random_bytes", NotAVideo),
        ("audio_only", AudioOnly),
        ("truncated", CorruptVideo),
        ("truncated_faststart", CorruptVideo),
        ("truncated_webm", CorruptVideo),
    ],
)
async def test_each_bad_file_gets_its_own_typed_error(
    bad_files: BadFiles, kind: str, error: type[MediaError]
) -> None:
    with pytest.raises(error) as caught:
        await probe(getattr(bad_files, kind))
    # every such error has a human text in both languages
    for lang in ("en", "ko"):
        assert t(lang, caught.value.key, **caught.value.params) != caught.value.key


async def test_a_video_over_the_length_limit_is_refused_with_both_lengths(av_video: Path) -> None:
    with pytest.raises(VideoTooLong) as caught:
        await probe(av_video, max_seconds=2.0)
    assert caught.value.params == {"duration": "0:03", "limit": "0:02"}
    assert "0:02" in t("en", caught.value.key, **caught.value.params)


async def test_a_photo_is_accepted_and_other_files_are_not(
    photo: Path, av_video: Path, bad_files: BadFiles
) -> None:
    info = await probe_image(photo)
    assert (info.width, info.height) == (320, 240)
    for not_a_photo in (av_video, bad_files.text, bad_files.random_bytes, bad_files.audio_only):
        with pytest.raises(NotAnImage):
            await probe_image(not_a_photo)
    with pytest.raises(EmptyFile):
        await probe_image(bad_files.empty)
