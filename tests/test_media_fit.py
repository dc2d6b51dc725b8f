"""Fitting: whatever comes in leaves as an MP4 that plays everywhere and fits the limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.media import fit_video, probe
from tests.media_factory import first_frame, video_packets

MIB = 1024 * 1024


def _starts_fast(path: Path) -> bool:
    head = path.read_bytes()
    return 0 <= head.find(b"moov") < head.find(b"mdat")


async def _assert_thumbnail(path: Path) -> None:
    picture = first_frame(path)
    assert max(picture.width, picture.height) <= 320
    assert path.stat().st_size < 200_000


async def test_a_one_minute_1080p_video_fits_under_ten_mib(
    long_1080p_video: Path, out_dir: Path
) -> None:
    source = await probe(long_1080p_video)
    assert (source.width, source.height, source.duration) == (1920, 1080, 60.0)
    assert source.size_bytes > 10 * MIB

    fitted = await fit_video(long_1080p_video, 10 * MIB, out_dir / "fit.mp4")

    assert fitted.size_bytes <= 10 * MIB
    assert fitted.path.stat().st_size == fitted.size_bytes
    info = await probe(fitted.path)
    assert info.duration == pytest.approx(60.0, abs=0.2)
    assert (info.codec, info.pix_fmt, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert _starts_fast(fitted.path)
    await _assert_thumbnail(fitted.thumbnail)


async def test_an_mp4_that_already_fits_is_copied_not_re_encoded(
    av_video: Path, out_dir: Path
) -> None:
    fitted = await fit_video(av_video, 10 * MIB, out_dir / "copy.mp4")
    assert fitted.method == "copy"
    assert video_packets(fitted.path) == video_packets(av_video)
    assert _starts_fast(fitted.path)
    assert (fitted.width, fitted.height) == (320, 240)
    await _assert_thumbnail(fitted.thumbnail)


async def test_a_webm_with_odd_width_becomes_h264_with_even_dimensions(
    webm_video: Path, out_dir: Path
) -> None:
    fitted = await fit_video(webm_video, 10 * MIB, out_dir / "webm.mp4")
    info = await probe(fitted.path)
    assert fitted.method == "crf"
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert (info.width, info.height) == (318, 240)
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert _starts_fast(fitted.path)


async def test_a_video_too_big_for_a_quality_encode_gets_a_size_targeted_one(
    noisy_video: Path, out_dir: Path
) -> None:
    limit = 120_000
    fitted = await fit_video(noisy_video, limit, out_dir / "small.mp4")
    assert fitted.method == "target"
    assert fitted.size_bytes <= limit
    info = await probe(fitted.path)
    assert info.duration == pytest.approx(3.0, abs=0.2)
    assert info.codec == "h264"


async def test_a_phone_video_keeps_its_upright_shape(rotated_video: Path, out_dir: Path) -> None:
    fitted = await fit_video(rotated_video, 10 * MIB, out_dir / "phone.mp4")
    assert (fitted.width, fitted.height) == (240, 320)
    thumb = first_frame(fitted.thumbnail)
    assert thumb.height > thumb.width
