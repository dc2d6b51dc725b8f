"""The local backend makes real, playable media for every action, offline."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import av
import pytest

from core.backends.base import (
    CANCELED,
    FAILED,
    STARTING,
    SUCCEEDED,
    BackendError,
    GenerationRequest,
    MemoryStartLog,
    OutputMissing,
    Prediction,
    PredictionLost,
)
from core.backends.local import LocalBackend
from core.backends.local.render import LOOKS
from core.media import probe
from tests.media_factory import audio_seconds, first_frame, mean_rgb

VEO = "google/veo-3-fast"
ANIMATE = "wan-video/wan-2.2-animate-animation"
REPLACE = "wan-video/wan-2.2-animate-replace"
BARK = "suno-ai/bark:b76242b40d67c76ab6742e987628a2a9ac019e11d56ab96c4e91ce03b79b2787"
MUSICGEN = "meta/musicgen:671ac645ce5e552cc63a54a2bbff63fcf798043055d2dac5fc9e36a837eedcfb"


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "work", short_side=144, fps=12)


_job_ids = itertools.count(1)


async def _start(backend: LocalBackend, model: str, inputs: dict[str, Any], **hints: Any) -> str:
    """Start a new job's prediction through the port (a fresh job id each time)."""
    request = GenerationRequest("any", model, inputs, hints)
    return await backend.start(f"job-{next(_job_ids)}", request, starts=MemoryStartLog())


async def _finish(
    backend: LocalBackend, model: str, inputs: dict[str, Any], **hints: Any
) -> Prediction:
    prediction_id = await _start(backend, model, inputs, **hints)
    assert prediction_id.startswith("local-")
    for _ in range(600):
        prediction = await backend.get(prediction_id)
        if prediction.done:
            return prediction
        await asyncio.sleep(0.05)
    raise AssertionError("the local prediction never finished")


def _path(url: str) -> Path:
    assert url.startswith("file://")
    return Path(url.removeprefix("file://"))


def _template_inputs(photo: Path, **extra: Any) -> dict[str, Any]:
    return {"image": photo, "prompt": "slow push in", "duration": 4, "aspect_ratio": "16:9",
            "resolution": "720p", "generate_audio": False, "seed": 7, "negative_prompt": "",
            **extra}


async def test_a_template_is_a_clip_of_the_asked_length_and_shape(
    backend: LocalBackend, photo: Path
) -> None:
    prediction = await _finish(backend, VEO, _template_inputs(photo, aspect_ratio="9:16",
                                                               generate_audio=True))
    assert prediction.status == SUCCEEDED, prediction.error
    info = await probe(_path(prediction.output))
    assert info.duration == pytest.approx(4.0, abs=0.1)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.height > info.width  # 9:16
    assert info.has_audio
    assert prediction.metrics["predict_time"] > 0


@pytest.mark.parametrize("look", LOOKS)
async def test_every_look_renders(backend: LocalBackend, photo: Path, look: str) -> None:
    prediction = await _finish(backend, VEO, _template_inputs(photo), look=look)
    assert prediction.status == SUCCEEDED, prediction.error
    info = await probe(_path(prediction.output))
    assert info.duration == pytest.approx(4.0, abs=0.1) and info.width > info.height


async def test_the_same_seed_makes_the_same_clip(backend: LocalBackend, photo: Path) -> None:
    first = await _finish(backend, VEO, _template_inputs(photo), look="shake")
    second = await _finish(backend, VEO, _template_inputs(photo), look="shake")
    assert _path(first.output).read_bytes() == _path(second.output).read_bytes()


async def test_glitch_animate_and_replace_are_the_clips_length_and_look_different(
    backend: LocalBackend, av_video: Path, photo: Path
) -> None:
    inputs = {"video": av_video, "character_image": photo, "resolution": "480",
              "frames_per_second": 12, "go_fast": True, "seed": 3}
    animate = await _finish(backend, ANIMATE, inputs)
    replace = await _finish(backend, REPLACE, inputs)
    assert animate.status == replace.status == SUCCEEDED, (animate.error, replace.error)
    pictures = []
    for prediction in (animate, replace):
        info = await probe(_path(prediction.output))
        assert info.duration == pytest.approx(3.0, abs=0.15)
        assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
        assert info.width > info.height
        pictures.append(first_frame(_path(prediction.output)))
    # replace keeps the (dimmed) clip around the picture; animate fills the frame with it
    corner = (0, 0, 20, 20)
    assert mean_rgb(pictures[0], corner) != pytest.approx(mean_rgb(pictures[1], corner), abs=8)


async def test_music_is_a_track_of_the_models_length(backend: LocalBackend) -> None:
    bark = await _finish(backend, BARK, {"prompt": "♪ a happy birthday song ♪",
                                         "history_prompt": "announcer", "text_temp": 0.7,
                                         "waveform_temp": 0.7})
    assert bark.status == SUCCEEDED, bark.error
    assert audio_seconds(_path(bark.output["audio_out"])) == pytest.approx(14.0, abs=0.3)
    musicgen = await _finish(backend, MUSICGEN, {"prompt": "calm lofi", "duration": 5})
    assert musicgen.status == SUCCEEDED, musicgen.error
    track = _path(musicgen.output)
    assert audio_seconds(track) == pytest.approx(5.0, abs=0.3)
    with av.open(str(track)) as container:
        assert not container.streams.video and container.streams.audio[0].codec_context.name == "aac"


async def test_a_bad_input_fails_the_prediction_with_a_reason(
    backend: LocalBackend, bad_files: Any
) -> None:
    prediction = await _finish(backend, VEO, _template_inputs(bad_files.text))
    assert prediction.status == FAILED
    assert "picture" in (prediction.error or "")


async def test_cancel_stops_a_running_prediction(tmp_path: Path, photo: Path) -> None:
    slow = LocalBackend(tmp_path / "work", delay=30, short_side=144)
    prediction_id = await _start(slow, VEO, _template_inputs(photo))
    assert (await slow.get(prediction_id)).status == STARTING
    await slow.cancel(prediction_id)
    assert (await slow.get(prediction_id)).status == CANCELED
    await slow.cancel(prediction_id)  # again: nothing happens
    await slow.close()


async def test_an_unknown_prediction_is_reported_lost(backend: LocalBackend) -> None:
    with pytest.raises(PredictionLost):
        await backend.get("local-from-before-the-restart")


async def test_a_job_creating_before_a_restart_is_rendered_again_once(
    tmp_path: Path, photo: Path
) -> None:
    starts = MemoryStartLog()
    request = GenerationRequest("template", VEO, _template_inputs(photo))
    await starts.record_creating("job-1", {"image": str(photo)})  # work died with the process
    restarted = LocalBackend(tmp_path / "work", delay=30, short_side=144)
    first, second = await asyncio.gather(
        restarted.start("job-1", request, starts=starts),
        restarted.start("job-1", request, starts=starts),
    )
    assert first == second and len(restarted._runs) == 1
    await restarted.close()


async def test_download_copies_the_output_within_the_limit(
    backend: LocalBackend, tmp_path: Path
) -> None:
    prediction = await _finish(backend, MUSICGEN, {"prompt": "drums", "duration": 2})
    dest = await backend.download(prediction.output, tmp_path / "got" / "music.m4a",
                                  max_bytes=10_000_000)
    assert dest.read_bytes() == _path(prediction.output).read_bytes()
    with pytest.raises(BackendError):
        await backend.download(prediction.output, tmp_path / "small.m4a", max_bytes=100)
    with pytest.raises(OutputMissing):
        await backend.download("file:///nonexistent/out.mp4", tmp_path / "x.mp4", max_bytes=100)


async def test_start_stores_storable_inputs(tmp_path: Path, photo: Path) -> None:
    slow = LocalBackend(tmp_path / "work", delay=30, short_side=144)
    starts = MemoryStartLog()
    request = GenerationRequest("template", VEO, {"image": photo, "duration": 4}, {"look": "shake"})
    await slow.start("job-1", request, starts=starts)
    record = await starts.start_record("job-1")
    assert record is not None and record.inputs == {"image": str(photo.resolve()), "duration": 4}
    await slow.close()


async def test_cancel_while_rendering_leaves_no_file_behind(tmp_path: Path, photo: Path) -> None:
    work = tmp_path / "work"
    backend = LocalBackend(work, short_side=720)
    prediction_id = await _start(backend, VEO, _template_inputs(photo, duration=8))
    for _ in range(500):
        if (await backend.get(prediction_id)).status == "processing":
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # ffmpeg is running now
    await backend.cancel(prediction_id)
    prediction = await backend.get(prediction_id)
    assert prediction.status == CANCELED and prediction.output is None
    assert list(work.iterdir()) == []
