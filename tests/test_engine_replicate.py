"""End to end on the real replicate client against the fake Replicate API:
each model's inputs match its schema, the output is downloaded, credits move once,
and every fault ends in a finished clip or exactly one refund."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from core.backends.replicate import ReplicateBackend
from core.catalogue import (
    GLITCH_ANIMATE,
    GLITCH_REPLACE,
    MUSIC,
    TEMPLATE,
    JobRequest,
    TemplateCatalogue,
    build_models,
)
from core.credits import CreditLedger
from core.engine import JobEngine
from core.http import REPLICATE_WEBHOOK_PATH, HttpServer
from core.jobs import JobStore
from core.media.probe import probe
from core.settings import load_settings
from core.users import UserDirectory
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.replicate import FakeReplicate

VEO = "google/veo-3-fast"
WAN_ANIMATE = "wan-video/wan-2.2-animate-animation"
WAN_REPLACE = "wan-video/wan-2.2-animate-replace"
BARK = "suno-ai/bark"


@pytest.fixture
async def replicate_fake(av_video: Path):
    async with FakeReplicate(default_delay=0.05) as fake:
        for model in (VEO, WAN_ANIMATE, WAN_REPLACE):
            fake.set_media(model, av_video)
        yield fake


@pytest.fixture
async def rig(db, tmp_path: Path, replicate_fake: FakeReplicate):
    settings = load_settings(None)
    models = build_models(settings)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=200)
    jobs = JobStore(db, ledger)
    backend = ReplicateBackend(replicate_fake.token, replicate_fake.api_url, retry_base_delay=0.01,
                               retry_max_delay=0.05, lookup_delay=0.05)
    notifier = RecordingNotifier()
    built: list[JobEngine] = []

    def engine(**overrides) -> JobEngine:
        options = dict(
            jobs=jobs, ledger=ledger, models=models, backend=backend, notifiers={"telegram": notifier},
            media_dir=tmp_path / "media", templates=TemplateCatalogue.load(), timeout=10,
            status_interval=0.05, poll_initial=0.02, poll_max=0.05, progress_every=0.5,
        )
        options.update(overrides)
        made = JobEngine(**options)
        built.append(made)
        return made

    user, _ = await ledger.ensure_user("telegram", "1")

    class Rig:
        pass

    r = Rig()
    r.ledger, r.jobs, r.models, r.backend, r.notifier, r.engine, r.user, r.tmp = (
        ledger, jobs, models, backend, notifier, engine, user, tmp_path)
    yield r
    for made in built:
        await made.stop()
    await backend.close()


def requests_for(action: str, frame: Path, clip: Path) -> JobRequest:
    if action == TEMPLATE:
        return JobRequest(TEMPLATE, prompt="a warm hug", image=str(frame), template="ai_hug",
                          look="warm_zoom", options={"duration": 6}, seed=7)
    if action in (GLITCH_ANIMATE, GLITCH_REPLACE):
        return JobRequest(action, image=str(frame), clip=str(clip), seed=7)
    return JobRequest(MUSIC, prompt="la la la", options={"style": "sing"}, seed=7)


async def run_to_end(rig, request: JobRequest, engine: JobEngine | None = None, timeout: float = 10):
    engine = engine or rig.engine()
    if not engine.alive:
        await engine.start()
    job = await engine.submit(user_id=rig.user.id, platform="telegram", chat_id="1", language="en",
                              request=request)
    deadline = time.monotonic() + timeout
    while True:
        current = await rig.jobs.get(job.id)
        if current.status in ("delivered", "failed", "canceled", "timed_out"):
            return current
        assert time.monotonic() < deadline, f"job stuck in {current.status}"
        await asyncio.sleep(0.02)


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "what the user should see never came"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("action", "model", "expected_inputs"),
    [
        (TEMPLATE, VEO, {"prompt": "a warm hug", "duration": 6, "aspect_ratio": "16:9",
                         "resolution": "720p", "generate_audio": True, "seed": 7}),
        (GLITCH_ANIMATE, WAN_ANIMATE, {"resolution": "480", "frames_per_second": 24, "go_fast": True, "seed": 7}),
        (GLITCH_REPLACE, WAN_REPLACE, {"resolution": "480", "frames_per_second": 24, "go_fast": True, "seed": 7}),
        (MUSIC, BARK, {"prompt": "♪ la la la ♪", "history_prompt": "en_speaker_6",
                       "text_temp": pytest.approx(0.7, abs=0.001), "waveform_temp": 0.7}),
    ],
)
async def test_each_model_end_to_end(rig, replicate_fake, photo, av_video, action, model, expected_inputs):
    job = await run_to_end(rig, requests_for(action, photo, av_video))
    assert job.status == "delivered", job.error_detail
    [prediction] = replicate_fake.predictions_of(model)
    sent = prediction.input
    for key, value in expected_inputs.items():
        assert sent[key] == value, key
    assert not any(key.startswith("_") for key in sent)
    for key in ("image", "video", "character_image"):
        if key in sent:
            assert replicate_fake.file_of_url(sent[key]) is not None, f"{key} was uploaded"
    output = Path(job.output_path)
    assert output.exists() and output.stat().st_size > 0
    if action != MUSIC:
        assert (await probe(output)).duration > 1
    price = rig.models[action].price
    assert await rig.ledger.balance(rig.user.id) == 200 - price
    kinds = [e.kind for e in await rig.ledger.history(rig.user.id)]
    assert kinds.count("charge") == 1 and "refund" not in kinds


@pytest.mark.parametrize(
    ("script", "status", "reason"),
    [
        ({"outcome": "failed", "error": "NSFW content detected"}, "failed", "rejected"),
        ({"outcome": "failed", "error": "CUDA error"}, "failed", "model_error"),
        ({"outcome": "canceled"}, "canceled", "canceled"),
        ({"outcome": "aborted"}, "failed", "aborted"),
        ({"output": None}, "failed", "missing_output"),
        ({"output": {"unexpected": 1}}, "failed", "missing_output"),
        ({"output": "not a url"}, "failed", "missing_output"),
        ({"output_gone": True}, "failed", "missing_output"),
    ],
)
async def test_each_model_fault_ends_in_exactly_one_refund(rig, replicate_fake, photo, script, status, reason):
    replicate_fake.script(VEO, **script)
    job = await run_to_end(rig, requests_for(TEMPLATE, photo, photo))
    assert (job.status, job.error_class) == (status, reason)
    assert await rig.ledger.balance(rig.user.id) == 200
    kinds = [e.kind for e in await rig.ledger.history(rig.user.id)]
    assert kinds.count("refund") == 1
    await until(lambda: any("20 credits refunded" in text for text in rig.notifier.texts(job.id)))


async def test_http_faults_still_end_in_a_clip_with_one_prediction(rig, replicate_fake, photo):
    replicate_fake.rate_limit_creates(3, retry_after=0.01)
    replicate_fake.fail_next("get", 2, status=503)
    replicate_fake.fail_next("upload", 1, status=502)
    job = await run_to_end(rig, requests_for(TEMPLATE, photo, photo))
    assert job.status == "delivered", job.error_detail
    assert len(replicate_fake.predictions_of(VEO)) == 1
    assert await rig.ledger.balance(rig.user.id) == 180


async def test_ambiguous_create_is_adopted_not_repeated(rig, replicate_fake, photo):
    replicate_fake.ambiguous_creates(1, status=500)
    job = await run_to_end(rig, requests_for(TEMPLATE, photo, photo))
    assert job.status == "delivered", job.error_detail
    assert len(replicate_fake.predictions_of(VEO)) == 1


async def test_a_422_from_the_model_is_refunded_as_rejected(rig, replicate_fake, photo):
    request = JobRequest(TEMPLATE, prompt="x", image=str(photo), options={}, seed=-5)  # seed must be >= 0
    replicate_fake.fail_next("create", 1, status=422, detail="input.seed: must be >= 0")
    job = await run_to_end(rig, request)
    assert (job.status, job.error_class) == ("failed", "rejected")
    assert await rig.ledger.balance(rig.user.id) == 200


async def test_deadline_cancels_the_prediction(rig, replicate_fake, photo):
    replicate_fake.script(VEO, delay=None)  # never finishes
    job = await run_to_end(rig, requests_for(TEMPLATE, photo, photo), engine=rig.engine(timeout=0.5))
    assert job.status == "timed_out"
    [prediction] = replicate_fake.predictions_of(VEO)
    assert prediction.status == "canceled"
    assert await rig.ledger.balance(rig.user.id) == 200


async def _webhook_rig(rig, replicate_fake):
    server = HttpServer(db=rig.jobs.db, engine=None, jobs=rig.jobs, host="127.0.0.1", port=0,
                        webhooks=rig.backend)
    await server.start()
    url = f"http://127.0.0.1:{server.bound_port}{REPLICATE_WEBHOOK_PATH}"
    engine = rig.engine(webhook_url=url, webhook_fallback=30)
    server.engine = engine
    return server, engine


async def test_webhook_mode_needs_no_polling_and_duplicates_are_harmless(rig, replicate_fake, photo):
    replicate_fake.script(VEO, delay=0.1, webhook_copies=2)
    server, engine = await _webhook_rig(rig, replicate_fake)
    try:
        job = await run_to_end(rig, requests_for(TEMPLATE, photo, photo), engine=engine)
        assert job.status == "delivered"
        await replicate_fake.wait_webhooks(2)
        gets = [r for r in replicate_fake.requests if r.method == "GET" and "/predictions/" in r.path]
        assert gets == []
        assert len(rig.notifier.delivered) == 1
        replay = replicate_fake.webhook_deliveries[0]
        await replicate_fake.replay_webhook(replay)
        await asyncio.sleep(0.1)
        assert len(rig.notifier.delivered) == 1
        assert await rig.ledger.balance(rig.user.id) == 180
    finally:
        await server.stop()


async def test_a_forged_webhook_is_rejected_and_changes_nothing(rig, replicate_fake, photo):
    replicate_fake.script(VEO, delay=None)
    server, engine = await _webhook_rig(rig, replicate_fake)
    try:
        await engine.start()
        job = await engine.submit(user_id=rig.user.id, platform="telegram", chat_id="1", language="en",
                                  request=requests_for(TEMPLATE, photo, photo))
        await replicate_fake.wait_for(lambda: bool(replicate_fake.predictions_of(VEO)))
        prediction = replicate_fake.predictions_of(VEO)[0]
        forged = json.dumps({**replicate_fake._prediction_json(prediction), "status": "succeeded",
                             "output": "http://127.0.0.1:1/evil.mp4"}).encode()
        url = f"http://127.0.0.1:{server.bound_port}{REPLICATE_WEBHOOK_PATH}"
        headers = replicate_fake.signed_headers(forged, secret="whsec_" + "A" * 32)
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=forged, headers=headers) as response:
                assert response.status == 401
            stale = replicate_fake.signed_headers(forged, timestamp=int(time.time()) - 3600)
            async with session.post(url, data=forged, headers=stale) as response:
                assert response.status == 401
        await asyncio.sleep(0.1)
        assert (await rig.jobs.get(job.id)).status == "running"
        assert engine.stats.webhooks_rejected == 2
        await replicate_fake.complete(prediction.id, "succeeded")
        for _ in range(200):
            if (await rig.jobs.get(job.id)).status == "delivered":
                break
            await asyncio.sleep(0.02)
        assert (await rig.jobs.get(job.id)).status == "delivered"
    finally:
        await server.stop()


async def test_a_music_job_whose_create_went_through_before_a_crash_adopts_it(rig, replicate_fake):
    request = JobRequest(MUSIC, prompt="la la la", options={"style": "sing"})
    crashed = rig.engine()  # never started: it stores and queues, then "dies"
    mine = await crashed.submit(user_id=rig.user.id, platform="telegram", chat_id="1",
                                language="en", request=request)
    spec = rig.models[MUSIC]
    generation = spec.request_for(mine.id, mine.request)
    await rig.jobs.record_creating(mine.id, dict(generation.inputs))
    made = await rig.backend.create(mine.id, spec.model_id, dict(generation.inputs))  # then the crash
    other = ReplicateBackend(replicate_fake.token, replicate_fake.api_url)  # someone else, same song
    await other.create("job-x", spec.model_id, {**generation.inputs, "text_temp": 0.7})
    await other.close()

    fresh = ReplicateBackend(replicate_fake.token, replicate_fake.api_url, lookup_delay=0.05)
    restarted = rig.engine(backend=fresh)  # a new process: nothing remembered in memory
    await restarted.start()
    await until(lambda: len(rig.notifier.delivered) == 1)
    job = await rig.jobs.get(mine.id)
    assert (job.status, job.prediction_id) == ("delivered", made)
    assert len(replicate_fake.predictions_of(BARK)) == 2  # nothing created again
    assert await rig.ledger.balance(rig.user.id) == 200 - spec.price
    await restarted.stop()
    await fresh.close()


async def test_cancel_while_the_create_is_in_flight_cancels_the_prediction(rig, replicate_fake, photo):
    replicate_fake.script(VEO, delay=None)  # runs (and costs) until it is canceled
    replicate_fake.ambiguous_creates(1, drop="hang", hang=0.5)  # created at once; the answer is slow
    engine = rig.engine()
    await engine.start()
    job = await engine.submit(user_id=rig.user.id, platform="telegram", chat_id="1", language="en",
                              request=requests_for(TEMPLATE, photo, photo))
    await until(lambda: len(replicate_fake.predictions_of(VEO)) == 1)  # exists; we do not know its id
    assert await engine.cancel(job.id, user_id=rig.user.id) > 0
    assert await rig.ledger.balance(rig.user.id) == 200
    [prediction] = replicate_fake.predictions_of(VEO)
    await until(lambda: prediction.status == "canceled", timeout=10)
    assert (await rig.jobs.get(job.id)).status == "canceled"
    assert len(replicate_fake.predictions_of(VEO)) == 1 and rig.notifier.delivered == []
