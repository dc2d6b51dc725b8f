"""ReplicateBackend on the real `replicate` client against the fake Replicate API."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core.backends.base import (
    ABORTED,
    CANCELED,
    FAILED,
    SUCCEEDED,
    BackendError,
    GenerationRequest,
    JobGone,
    MemoryStartLog,
    OutputMissing,
    Prediction,
    PredictionLost,
    extract_output_url,
)
from core.backends.replicate import (
    OutputTooLarge,
    ReplicateBackend,
    TokenBucket,
    parse_prediction_payload,
)
from core.catalogue import MUSIC, JobRequest, build_models
from core.settings import load_settings
from core.webhooks import verify_webhook
from tests.fakes.replicate import (
    BARK_VERSION,
    MUSICGEN_VERSION,
    FakeModel,
    FakeReplicate,
    WebhookSink,
)

VEO = "google/veo-3-fast"
WAN_ANIMATE = "wan-video/wan-2.2-animate-animation"
WAN_REPLACE = "wan-video/wan-2.2-animate-replace"
BARK = f"suno-ai/bark:{BARK_VERSION}"
MUSICGEN = f"meta/musicgen:{MUSICGEN_VERSION}"
MB = 1 << 20


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(default_delay=0.03) as server:
        yield server


def make_backend(fake: FakeReplicate, **options: Any) -> ReplicateBackend:
    settings: dict[str, Any] = {
        "retry_base_delay": 0.01,
        "lookup_delay": 0.02,
        "max_requests_per_second": 1000,
    }
    settings.update(options)
    return ReplicateBackend(fake.token, fake.base_url, **settings)


@pytest.fixture
async def backend(fake: FakeReplicate) -> AsyncIterator[ReplicateBackend]:
    made = make_backend(fake)
    yield made
    await made.close()


async def run_to_end(backend: ReplicateBackend, prediction_id: str) -> Prediction:
    for _ in range(500):
        prediction = await backend.get(prediction_id)
        if prediction.done:
            return prediction
        await asyncio.sleep(0.01)
    raise AssertionError("prediction never finished")


def media_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "frame": tmp_path / "frame.jpg",
        "clip": tmp_path / "clip.mp4",
        "portrait": tmp_path / "portrait.png",
    }
    for name, path in files.items():
        path.write_bytes(f"{name} bytes ".encode() * 10)
    return files


def job_inputs(model: str, files: dict[str, Path]) -> dict[str, Any]:
    if model == VEO:
        return {
            "image": files["frame"],
            "prompt": "slow dolly zoom, neon look",
            "duration": 8,
            "aspect_ratio": "9:16",
            "resolution": "720p",
            "generate_audio": False,
            "seed": 1234,
            "negative_prompt": "blurry",
        }
    if model in (WAN_ANIMATE, WAN_REPLACE):
        return {
            "video": files["clip"],
            "character_image": files["portrait"],
            "resolution": "720",
            "frames_per_second": 24,
            "go_fast": True,
            "seed": 7,
        }
    if model == BARK:
        return {
            "prompt": "♪ city lights are calling ♪",
            "history_prompt": "en_speaker_6",
            "text_temp": 0.7,
            "waveform_temp": 0.7,
        }
    return {
        "prompt": "lofi beat",
        "duration": 12,
        "model_version": "stereo-large",
        "output_format": "mp3",
    }


# --- the four models end to end ------------------------------------------------------


@pytest.mark.parametrize(
    "model, output_key, suffix",
    [
        (VEO, None, ".mp4"),
        (WAN_ANIMATE, None, ".mp4"),
        (WAN_REPLACE, None, ".mp4"),
        (BARK, "audio_out", ".wav"),
        (MUSICGEN, None, ".mp3"),
    ],
)
async def test_each_model_runs_end_to_end(
    fake: FakeReplicate,
    backend: ReplicateBackend,
    tmp_path: Path,
    model: str,
    output_key: str | None,
    suffix: str,
) -> None:
    files = media_files(tmp_path)
    result_media = tmp_path / "made.bin"
    result_media.write_bytes(b"generated media " * 1000)
    fake.set_media(model, result_media)
    job_id = f"job-{model.split('/')[1][:12]}"
    raw = job_inputs(model, files)
    starts = MemoryStartLog()
    request = GenerationRequest("any", model, raw, hints={"look": "neon"})

    prediction_id = await backend.start(job_id, request, starts=starts)
    record = await starts.start_record(job_id)
    assert record is not None and record.prediction_id == prediction_id
    json.dumps(record.inputs)  # storable as is
    done = await run_to_end(backend, prediction_id)

    assert done.status == SUCCEEDED
    url = extract_output_url(done.output, output_key)
    assert url.endswith(suffix)
    saved = await backend.download(url, tmp_path / "out" / f"result{suffix}", max_bytes=MB)
    assert saved.read_bytes() == result_media.read_bytes()

    (sent,) = fake.predictions_of(model)
    assert sent.id == prediction_id
    expected = {k: v for k, v in raw.items() if not isinstance(v, Path)}
    assert {k: v for k, v in sent.input.items() if k in expected} == expected
    assert set(sent.input) == set(raw)  # the hints were never sent
    for key, value in raw.items():
        if isinstance(value, Path):  # uploaded, then sent as the file's URL
            uploaded = fake.file_of_url(sent.input[key])
            assert uploaded is not None and uploaded.data == value.read_bytes()
            assert uploaded.metadata == {"job_id": job_id}
    assert len(fake.creates()) == 1


async def test_one_file_used_twice_is_uploaded_once(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    clip = media_files(tmp_path)["clip"]
    inputs = await backend.prepare("job-1", {"video": clip, "character_image": clip, "seed": (1,)})
    assert inputs["video"] == inputs["character_image"]
    assert inputs["seed"] == [1]
    assert len(fake.files) == 1


async def test_prepare_refuses_a_missing_file(backend: ReplicateBackend, tmp_path: Path) -> None:
    with pytest.raises(BackendError):
        await backend.prepare("job-1", {"image": tmp_path / "nope.jpg"})


async def test_create_refuses_unprepared_local_files(
    backend: ReplicateBackend, tmp_path: Path
) -> None:
    with pytest.raises(BackendError, match="prepare"):
        await backend.create("job-1", VEO, {"prompt": "x", "image": tmp_path / "a.jpg"})


async def test_upload_5xx_is_retried(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    fake.fail_next("upload", 2, status=502)
    inputs = await backend.prepare("job-1", {"image": media_files(tmp_path)["frame"]})
    assert fake.file_of_url(inputs["image"]) is not None


# --- creating exactly one prediction per job -----------------------------------------


async def test_429_storm_on_create_still_makes_one_prediction(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.rate_limit_creates(5, retry_after=0)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    assert list(fake.predictions) == [prediction_id]
    assert len(fake.creates()) == 6


async def test_retry_after_of_a_429_is_honoured(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.fail_next("create", 1, status=429, retry_after="1", detail="Request was throttled.")
    started = time.monotonic()
    await backend.create("job-1", VEO, {"prompt": "x"})
    assert time.monotonic() - started >= 0.9
    assert len(fake.predictions) == 1


async def test_endless_429_gives_up_with_a_retryable_error(fake: FakeReplicate) -> None:
    backend = make_backend(fake, max_create_attempts=3)
    fake.rate_limit_creates(10, retry_after=0)
    with pytest.raises(BackendError) as failed:
        await backend.create("job-1", VEO, {"prompt": "x"})
    assert failed.value.retryable and failed.value.status == 429
    assert fake.predictions == {}
    await backend.close()


@pytest.mark.parametrize("drop", [None, "disconnect"])
async def test_ambiguous_create_adopts_the_prediction_that_exists(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path, drop: str | None
) -> None:
    inputs = await backend.prepare(
        "job-1", {"prompt": "x", "image": media_files(tmp_path)["frame"]}
    )
    fake.ambiguous_creates(1, status=500, drop=drop)
    prediction_id = await backend.create("job-1", VEO, inputs)
    assert list(fake.predictions) == [prediction_id]
    assert len(fake.creates()) == 1
    assert (await run_to_end(backend, prediction_id)).status == SUCCEEDED


async def test_create_that_times_out_is_adopted_not_repeated(fake: FakeReplicate) -> None:
    backend = make_backend(fake, http_timeout=0.3)
    fake.ambiguous_creates(1, drop="hang", hang=5)
    prediction_id = await backend.create("job-1", BARK, {"prompt": "hello"})
    assert list(fake.predictions) == [prediction_id]
    assert len(fake.creates()) == 1
    await backend.close()


async def test_ambiguous_create_found_when_the_listing_omits_inputs(fake: FakeReplicate) -> None:
    fake.list_includes_input = False
    backend = make_backend(fake)
    fake.ambiguous_creates(1, status=502)
    prediction_id = await backend.create("job-1", MUSICGEN, {"prompt": "x", "duration": 5})
    assert list(fake.predictions) == [prediction_id]
    await backend.close()


async def test_official_model_listed_under_an_internal_name_is_adopted(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    veo = fake.models[VEO]
    fake.add_model(FakeModel(**{**veo.__dict__, "internal_name": "replicate-internal/veo-3-fast"}))
    fake.ambiguous_creates(1)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    assert list(fake.predictions) == [prediction_id]


async def test_5xx_before_anything_was_created_is_retried_once_more(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.fail_next("create", 1, status=503)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    assert list(fake.predictions) == [prediction_id]
    assert len(fake.creates()) == 2


async def test_two_jobs_with_identical_inputs_never_share_a_prediction(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    same = {"prompt": "happy birthday"}
    first = await backend.create("job-1", BARK, same)
    fake.fail_next("create", 1, status=500)  # job 2's first try fails before creating
    second = await backend.create("job-2", BARK, same)
    assert first != second
    assert sorted(fake.predictions) == sorted([first, second])


async def test_after_a_restart_an_earlier_prediction_is_found_across_pages(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.page_size = 2
    first = await backend.create("job-1", BARK, {"prompt": "first"})
    for n in range(3):
        await backend.create(f"job-{n + 2}", BARK, {"prompt": f"later {n}"})
    restarted = make_backend(fake)
    assert await restarted.find_existing(BARK, {"prompt": "first"}) == first
    assert await restarted.find_existing(BARK, {"prompt": "never sent"}) is None
    assert await restarted.find_existing(MUSICGEN, {"prompt": "first"}) is None
    await restarted.close()


async def test_invalid_input_is_not_retried(fake: FakeReplicate, backend: ReplicateBackend) -> None:
    with pytest.raises(BackendError) as refused:
        await backend.create("job-1", VEO, {"prompt": "x", "duration": 5})
    assert refused.value.status == 422 and not refused.value.retryable
    assert "duration" in str(refused.value)
    assert len(fake.creates()) == 1


async def test_create_asks_for_completed_webhooks_and_they_verify(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    secret = await backend.webhook_secret()
    fake.script(VEO, webhook_copies=2)
    async with WebhookSink() as sink:
        prediction_id = await backend.create(
            "job-1", VEO, {"prompt": "x"}, webhook_url=sink.url("/webhooks/replicate/job-1")
        )
        received = await sink.wait(2)
    create_body = fake.creates()[0].json
    assert create_body["webhook"] == sink.url("/webhooks/replicate/job-1")
    assert create_body["webhook_events_filter"] == ["completed"]
    for _, headers, body in received:
        verify_webhook(headers, body, secret)
        prediction = parse_prediction_payload(json.loads(body))
        assert prediction.id == prediction_id and prediction.status == SUCCEEDED
    assert received[0][1]["webhook-id"] == received[1][1]["webhook-id"]


# --- reading predictions --------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, error",
    [(FAILED, "NSFW content detected"), (CANCELED, None), (ABORTED, None)],
)
async def test_unsuccessful_predictions_keep_their_status(
    fake: FakeReplicate, backend: ReplicateBackend, outcome: str, error: str | None
) -> None:
    fake.script(VEO, outcome=outcome, error=error)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    done = await run_to_end(backend, prediction_id)
    assert done.status == outcome and done.done
    assert done.error == error


@pytest.mark.parametrize("output", [None, {"unexpected": 1}, "not a url", [], {"audio_out": 3}, 42])
async def test_missing_or_malformed_output_is_output_missing(
    fake: FakeReplicate, backend: ReplicateBackend, output: Any
) -> None:
    fake.script(BARK, output=output)
    prediction_id = await backend.create("job-1", BARK, {"prompt": "x"})
    done = await run_to_end(backend, prediction_id)
    assert done.status == SUCCEEDED
    with pytest.raises(OutputMissing):
        extract_output_url(done.output, "audio_out")


def test_output_url_shapes() -> None:
    assert extract_output_url("https://x/y.mp4") == "https://x/y.mp4"
    assert extract_output_url(["https://x/1.mp4", "https://x/2.mp4"]) == "https://x/1.mp4"
    assert extract_output_url({"audio_out": "https://x/a.wav"}) == "https://x/a.wav"
    assert extract_output_url({"audio_out": "https://x/a.wav"}, "audio_out") == "https://x/a.wav"
    with pytest.raises(OutputMissing):
        extract_output_url({"a": "https://x/1", "b": "https://x/2"})


def test_payload_parsing_tolerates_nulls_and_rejects_garbage() -> None:
    parsed = parse_prediction_payload(
        {"id": "abc", "status": "aborted", "output": None, "logs": None, "metrics": None}
    )
    assert parsed == Prediction(id="abc", status=ABORTED)
    for garbage in ({}, {"id": "abc"}, {"status": "succeeded"}, {"id": 3, "status": "x"}):
        with pytest.raises(BackendError):
            parse_prediction_payload(garbage)


async def test_get_maps_http_failures(fake: FakeReplicate, backend: ReplicateBackend) -> None:
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    with pytest.raises(PredictionLost):
        await backend.get("unknownprediction")
    with pytest.raises(PredictionLost):
        await backend.get("../../v1/account")
    fake.fail_next("get", 1, status=500)
    with pytest.raises(BackendError) as failed:
        await backend.get(prediction_id)
    assert failed.value.retryable and failed.value.status == 500
    fake.fail_next("get", 20, status=429, retry_after="0")  # outlasts the client's own retries
    with pytest.raises(BackendError) as throttled:
        await backend.get(prediction_id)
    assert throttled.value.retryable and throttled.value.status == 429
    fake.clear_faults()
    assert (await backend.get(prediction_id)).id == prediction_id


async def test_cancel_stops_a_running_prediction(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.script(VEO, delay=None)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    fake.fail_next("cancel", 1, status=502)
    await backend.cancel(prediction_id)
    assert (await backend.get(prediction_id)).status == CANCELED
    await backend.cancel(prediction_id)  # already over: harmless
    with pytest.raises(PredictionLost):
        await backend.cancel("unknownprediction")


async def test_token_never_appears_in_errors_or_logs(
    fake: FakeReplicate, backend: ReplicateBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    fake.fail_next("get", 1, status=500, detail=f"upstream echoed {fake.token}")
    with pytest.raises(BackendError) as failed:
        await backend.get(prediction_id)
    assert fake.token not in str(failed.value)
    assert "[redacted]" in str(failed.value)
    assert fake.token not in repr(backend)
    stranger = ReplicateBackend("r8_wrongtoken0123456789abcdef", fake.base_url)
    with pytest.raises(BackendError) as refused:
        await stranger.create("job-1", VEO, {"prompt": "x"})
    assert refused.value.status == 401 and "r8_wrongtoken" not in str(refused.value)
    await stranger.close()
    assert fake.token not in caplog.text


async def test_base_url_may_include_v1(fake: FakeReplicate) -> None:
    backend = ReplicateBackend(fake.token, fake.api_url + "/", retry_base_delay=0.01)
    assert await backend.webhook_secret() == fake.webhook_secret
    await backend.close()


# --- downloads -------------------------------------------------------------------------


async def test_download_refuses_oversize_output(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    fake.set_media(VEO, b"x" * (2 * MB))
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    url = extract_output_url((await run_to_end(backend, prediction_id)).output)
    dest = tmp_path / "out.mp4"
    with pytest.raises(OutputTooLarge):
        await backend.download(url, dest, max_bytes=MB)
    assert list(tmp_path.iterdir()) == []


async def test_download_counts_bytes_when_no_length_is_announced(
    backend: ReplicateBackend, tmp_path: Path
) -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"y" * 65536)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/big.mp4", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/big.mp4"
    try:
        with pytest.raises(OutputTooLarge):
            await backend.download(url, tmp_path / "big.mp4", max_bytes=MB)
        assert list(tmp_path.iterdir()) == []
        saved = await backend.download(url, tmp_path / "big.mp4", max_bytes=4 * MB)
        assert saved.stat().st_size == 40 * 65536
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("how", ["gone", "expired"])
async def test_deleted_output_is_output_missing(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path, how: str
) -> None:
    if how == "gone":
        fake.script(VEO, output_gone=True)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    url = extract_output_url((await run_to_end(backend, prediction_id)).output)
    if how == "expired":
        fake.expire_outputs()
    with pytest.raises(OutputMissing) as missing:
        await backend.download(url, tmp_path / "out.mp4", max_bytes=MB)
    assert missing.value.status == 404
    assert list(tmp_path.iterdir()) == []


async def test_download_5xx_is_retryable(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    url = extract_output_url((await run_to_end(backend, prediction_id)).output)
    fake.fail_next("output", 1, status=502)
    with pytest.raises(BackendError) as failed:
        await backend.download(url, tmp_path / "out.mp4", max_bytes=MB)
    assert failed.value.retryable and not isinstance(failed.value, OutputMissing)
    assert (await backend.download(url, tmp_path / "out.mp4", max_bytes=MB)).exists()


async def test_download_refuses_non_urls_and_reads_data_uris(
    backend: ReplicateBackend, tmp_path: Path
) -> None:
    for bad in ("", "not a url", "ftp://x/y", "file:///etc/passwd"):
        with pytest.raises(OutputMissing):
            await backend.download(bad, tmp_path / "x", max_bytes=MB)
    saved = await backend.download(
        "data:audio/wav;base64,UklGRg==", tmp_path / "a.wav", max_bytes=MB
    )
    assert saved.read_bytes() == b"RIFF"
    with pytest.raises(OutputTooLarge):
        await backend.download("data:audio/wav;base64,UklGRg==", tmp_path / "b.wav", max_bytes=2)


# --- the request budget -------------------------------------------------------------------


async def test_token_bucket_spaces_out_requests_beyond_its_burst() -> None:
    clock = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    bucket = TokenBucket(10, 2, clock=lambda: clock[0], sleep=fake_sleep)
    for _ in range(6):
        await bucket.acquire()
    assert clock[0] == pytest.approx(0.4)  # 2 at once, then 4 at 10/s


async def test_polling_many_jobs_stays_within_the_request_budget(fake: FakeReplicate) -> None:
    fake.script(VEO, delay=None)
    backend = make_backend(fake, max_requests_per_second=40)
    prediction_id = await backend.create("job-1", VEO, {"prompt": "x"})
    started = time.monotonic()
    await asyncio.gather(*(backend.get(prediction_id) for _ in range(60)))
    elapsed = time.monotonic() - started
    # 40 of burst (one spent on the create), then 40/s: 21 more need about half a second.
    assert elapsed >= 0.45
    gets = [r.at for r in fake.requests if r.method == "GET"]
    window = [t for t in gets if t - gets[0] < 1.0]
    assert len(window) <= 80
    await backend.close()


async def test_create_budget_keeps_a_burst_of_jobs_under_the_api_limit() -> None:
    async with FakeReplicate(create_limit=(20, 0.5)) as fake:
        # 4 at once, then 20/s: any half second sees at most 14 creates.
        backend = make_backend(fake, max_creates_per_minute=1200, create_burst=4)
        ids = await asyncio.gather(
            *(backend.create(f"job-{n}", VEO, {"prompt": f"clip {n}"}) for n in range(30))
        )
        assert len(set(ids)) == 30 and len(fake.predictions) == 30
        assert fake.throttled == 0
        await backend.close()


async def test_without_a_budget_the_fake_throttles_and_the_backend_recovers() -> None:
    async with FakeReplicate(create_limit=(10, 0.3)) as fake:
        backend = make_backend(fake, max_creates_per_minute=100_000)
        ids = await asyncio.gather(
            *(backend.create(f"job-{n}", VEO, {"prompt": f"clip {n}"}) for n in range(15))
        )
        assert fake.throttled > 0
        assert len(set(ids)) == 15 and len(fake.predictions) == 15
        await backend.close()


# --- the port: one prediction per job, whatever happens ------------------------------------


def music_request(job_id: str, engine: str, prompt: str = "happy birthday") -> GenerationRequest:
    """A music job's request as the catalogue builds it (with the job's marker)."""
    settings = load_settings(None, music_model=engine)
    return build_models(settings)[MUSIC].request_for(job_id, JobRequest(MUSIC, prompt=prompt))


class EndsDuringCreate(MemoryStartLog):
    """A job canceled while its create request is on the way."""

    async def record_creating(self, job_id: str, inputs: dict[str, Any]) -> bool:
        recorded = await super().record_creating(job_id, inputs)
        self.ended.add(job_id)
        return recorded


async def test_start_called_twice_for_one_job_creates_one_prediction(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    starts = MemoryStartLog()
    request = GenerationRequest(
        "template", VEO, {"prompt": "x", "image": media_files(tmp_path)["frame"]}
    )
    first, second = await asyncio.gather(
        backend.start("job-1", request, starts=starts),
        backend.start("job-1", request, starts=starts),
    )
    again = await backend.start("job-1", request, starts=starts)
    assert first == second == again
    assert len(fake.creates()) == 1 and len(fake.files) == 1


async def test_a_job_recorded_creating_adopts_the_prediction_made_before_a_crash(
    fake: FakeReplicate, backend: ReplicateBackend, tmp_path: Path
) -> None:
    starts = MemoryStartLog()
    request = GenerationRequest(
        "template", VEO, {"prompt": "x", "image": media_files(tmp_path)["frame"]}
    )
    inputs = await backend.prepare("job-1", dict(request.inputs))
    await starts.record_creating("job-1", inputs)
    made = await backend.create("job-1", VEO, inputs)  # the create went through, then the crash
    await backend.create("job-2", VEO, {"prompt": "x"})  # someone else's, made later

    restarted = make_backend(fake)
    assert await restarted.start("job-1", request, starts=starts) == made
    assert len(fake.creates()) == 2 and len(fake.files) == 1  # nothing created or uploaded again
    await restarted.close()


@pytest.mark.parametrize("engine, model", [("bark", BARK), ("musicgen", MUSICGEN)])
async def test_a_music_job_recorded_creating_is_told_apart_by_its_marker(
    fake: FakeReplicate, backend: ReplicateBackend, engine: str, model: str
) -> None:
    starts = MemoryStartLog()
    mine, theirs = music_request("job-1", engine), music_request("job-2", engine)
    assert mine.model == model and mine.inputs["prompt"] == theirs.inputs["prompt"]
    await starts.record_creating("job-1", dict(mine.inputs))
    made = await backend.create("job-1", model, dict(mine.inputs))  # then the crash
    later = await backend.start("job-2", theirs, starts=starts)  # same prompt, newer

    restarted = make_backend(fake)
    assert await restarted.start("job-1", mine, starts=starts) == made != later
    assert len(fake.creates()) == 2
    await restarted.close()


async def test_a_job_recorded_creating_whose_create_never_happened_creates_exactly_one(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    starts = MemoryStartLog()
    request = music_request("job-1", "bark")
    await backend.create("job-0", BARK, {"prompt": "happy birthday"})  # an older, other job
    # recorded, then the crash before the request left
    await starts.record_creating("job-1", dict(request.inputs))

    restarted = make_backend(fake)
    prediction_id = await restarted.start("job-1", request, starts=starts)
    assert await restarted.start("job-1", request, starts=starts) == prediction_id
    assert len(fake.creates()) == 2
    assert fake.predictions[prediction_id].input == request.inputs
    await restarted.close()


async def test_a_job_canceled_while_its_create_is_on_the_way_leaves_nothing_running(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.script(BARK, delay=None)
    with pytest.raises(JobGone):
        await backend.start("job-1", music_request("job-1", "bark"), starts=EndsDuringCreate())
    (prediction,) = fake.predictions_of(BARK)
    assert prediction.status == CANCELED


async def test_the_engines_task_stopped_mid_create_still_cancels_a_canceled_jobs_prediction(
    fake: FakeReplicate, backend: ReplicateBackend
) -> None:
    fake.script(BARK, delay=None)
    fake.ambiguous_creates(1, drop="hang", hang=0.3)  # created, but the answer is slow
    starts = MemoryStartLog()
    started = asyncio.create_task(
        backend.start("job-1", music_request("job-1", "bark"), starts=starts)
    )
    await fake.wait_for(lambda: len(fake.creates()) == 1)
    starts.ended.add("job-1")  # the user cancels; the engine stops the job's task
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started
    await fake.wait_for(lambda: any(p.status == CANCELED for p in fake.predictions.values()))
