"""The fake Replicate API speaks the wire protocol the real `replicate` client expects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from replicate.client import Client
from replicate.exceptions import ReplicateError
from replicate.webhook import Webhooks, WebhookSigningSecret

from tests.fakes.replicate import BARK_VERSION, FakeReplicate, WebhookSink

VEO = "google/veo-3-fast"
BARK = "suno-ai/bark"


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(default_delay=0.03) as server:
        yield server


@pytest.fixture
async def client(fake: FakeReplicate) -> AsyncIterator[Client]:
    real = Client(api_token=fake.token, base_url=fake.base_url)
    yield real
    await real._async_client.aclose()


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url)


async def wait_done(client: Client, prediction_id: str) -> dict[str, object]:
    for _ in range(200):
        response = await client._async_request("GET", f"/v1/predictions/{prediction_id}")
        payload: dict[str, object] = response.json()
        if payload["status"] in ("succeeded", "failed", "canceled", "aborted"):
            return payload
        await asyncio.sleep(0.01)
    raise AssertionError("prediction never finished")


async def test_official_model_runs_through_starting_processing_succeeded(
    fake: FakeReplicate, client: Client
) -> None:
    fake.script(VEO, delay=0.15)
    created = await client.predictions.async_create(
        model=VEO, input={"prompt": "a cat surfing", "duration": 4}
    )
    assert created.status == "starting"
    assert fake.requests[-1].path == "/v1/models/google/veo-3-fast/predictions"

    seen = {created.status}
    while created.status not in ("succeeded", "failed", "canceled"):
        await asyncio.sleep(0.02)
        created = await client.predictions.async_get(created.id)
        seen.add(created.status)
    assert seen == {"starting", "processing", "succeeded"}
    assert isinstance(created.output, str) and created.output.endswith(".mp4")
    media = await fetch(created.output)
    assert media.status_code == 200 and media.content[4:8] == b"ftyp"


async def test_pinned_model_is_created_by_version_and_answers_audio_out(
    fake: FakeReplicate, client: Client
) -> None:
    created = await client.predictions.async_create(
        version=BARK_VERSION, input={"prompt": "♪ la la ♪", "history_prompt": "en_speaker_3"}
    )
    assert fake.requests[-1].path == "/v1/predictions"
    assert fake.requests[-1].json["version"] == BARK_VERSION
    done = await wait_done(client, created.id)
    assert done["model"] == BARK
    output = done["output"]
    assert isinstance(output, dict) and output["audio_out"].endswith(".wav")
    assert (await fetch(output["audio_out"])).content[:4] == b"RIFF"


async def test_client_refuses_a_versioned_reference_for_the_model_endpoint(
    client: Client,
) -> None:
    # Why the backend sends `version=` for pinned models.
    with pytest.raises(ValueError):
        await client.predictions.async_create(model=f"{BARK}:{BARK_VERSION}", input={})


async def test_bad_input_is_refused_with_422_naming_the_field(
    fake: FakeReplicate, client: Client
) -> None:
    with pytest.raises(ReplicateError) as refused:
        await client.predictions.async_create(
            model=VEO, input={"prompt": "x", "duration": 5, "colour": "red"}
        )
    assert refused.value.status == 422
    assert refused.value.detail is not None
    assert "input.duration" in refused.value.detail
    assert "colour" in refused.value.detail
    assert fake.predictions == {}


@pytest.mark.parametrize(
    "model, bad_input",
    [
        (VEO, {"duration": 4}),  # prompt missing
        (VEO, {"prompt": "x", "aspect_ratio": "4:3"}),
        (VEO, {"prompt": "x", "resolution": "4k"}),
        (VEO, {"prompt": "x", "generate_audio": "yes"}),
        (VEO, {"prompt": "x", "seed": 1.5}),
        (VEO, {"prompt": "x", "image": "ftp://example.com/cat.png"}),  # not an HTTP(S) URL
        ("wan-video/wan-2.2-animate-animation", {"video": "data:video/mp4;base64,AA=="}),
        (
            "wan-video/wan-2.2-animate-replace",
            {
                "video": "data:video/mp4;base64,AA==",
                "character_image": "data:image/png;base64,AA==",
                "frames_per_second": 61,
            },
        ),
    ],
)
async def test_schema_violations_are_refused(
    client: Client, model: str, bad_input: dict[str, object]
) -> None:
    with pytest.raises(ReplicateError) as refused:
        await client.predictions.async_create(model=model, input=bad_input)
    assert refused.value.status == 422


async def test_an_input_url_of_another_host_is_fetched_at_start_and_a_refused_one_fails(
    fake: FakeReplicate, client: Client
) -> None:
    """Like Replicate: any HTTP(S) URL is accepted, and downloaded when the prediction starts."""
    served = f"{fake.base_url}/outputs/nothing/here.png"  # another "host" would be the same
    gone = "http://127.0.0.1:9/cat.png"  # nothing listens on the discard port
    prediction = await client.predictions.async_create(model=VEO, input={"prompt": "x", "image": gone})
    done = await wait_done(client, prediction.id)
    assert done["status"] == "failed" and "Failed to download input image" in str(done["error"])
    [fetch] = fake.input_fetches
    assert (fetch.prediction_id, fetch.url, fetch.status) == (prediction.id, gone, 0)
    with pytest.raises(ReplicateError):  # its own URLs are still checked at create
        await client.predictions.async_create(model=VEO, input={"prompt": "x", "image": served})


async def test_pinned_models_validate_their_inputs_too(client: Client) -> None:
    for bad in ({"prompt": "x", "text_temp": 1.5}, {"prompt": "x", "history_prompt": "robot"}):
        with pytest.raises(ReplicateError) as refused:
            await client.predictions.async_create(version=BARK_VERSION, input=bad)
        assert refused.value.status == 422


async def test_unknown_version_and_unofficial_model_endpoint_are_refused(
    client: Client,
) -> None:
    with pytest.raises(ReplicateError) as unknown:
        await client.predictions.async_create(version="0" * 64, input={"prompt": "x"})
    assert unknown.value.status == 422
    with pytest.raises(ReplicateError) as unofficial:
        await client.predictions.async_create(model=BARK, input={"prompt": "x"})
    assert unofficial.value.status == 404


async def test_wrong_token_is_unauthenticated(fake: FakeReplicate) -> None:
    stranger = Client(api_token="r8_not_the_right_one", base_url=fake.base_url)
    with pytest.raises(ReplicateError) as refused:
        await stranger.predictions.async_get("abc")
    assert refused.value.status == 401
    await stranger._async_client.aclose()


async def test_uploaded_files_are_served_and_usable_as_inputs(
    fake: FakeReplicate, client: Client, tmp_path: Path
) -> None:
    frame = tmp_path / "frame.png"
    frame.write_bytes(b"\x89PNG fake image")
    uploaded = await client.files.async_create(frame, metadata={"job_id": "job-7"})
    stored = fake.files[uploaded.id]
    assert stored.data == frame.read_bytes()
    assert stored.name == "frame.png" and stored.content_type == "image/png"
    assert stored.metadata == {"job_id": "job-7"}
    assert uploaded.urls["get"] == f"{fake.api_url}/files/{uploaded.id}"
    assert (await client.files.async_get(uploaded.id)).size == len(stored.data)
    download = await fetch(uploaded.urls["get"] + "/download")
    assert download.content == frame.read_bytes()

    created = await client.predictions.async_create(
        model=VEO, input={"prompt": "zoom in", "image": uploaded.urls["get"]}
    )
    assert [p.id for p in fake.predictions_for_job("job-7")] == [created.id]


async def test_list_is_newest_first_and_paginated_with_next(fake: FakeReplicate) -> None:
    fake.page_size = 2
    client = Client(api_token=fake.token, base_url=fake.base_url)
    ids = []
    for n in range(5):
        created = await client.predictions.async_create(model=VEO, input={"prompt": f"p{n}"})
        ids.append(created.id)
    listed: list[str] = []
    cursor: object = ...
    pages = 0
    while cursor is not None:
        page = await client.predictions.async_list(cursor)  # type: ignore[arg-type]
        listed += [p.id for p in page.results]
        cursor = page.next
        pages += 1
    assert listed == ids[::-1]
    assert pages == 3
    await client._async_client.aclose()


async def test_cancel_ends_a_running_prediction(fake: FakeReplicate, client: Client) -> None:
    fake.script(VEO, delay=None)
    created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    canceled = await client.predictions.async_cancel(created.id)
    assert canceled.status == "canceled"
    assert fake.predictions[created.id].status == "canceled"


async def test_a_held_prediction_finishes_when_told(fake: FakeReplicate, client: Client) -> None:
    fake.script(VEO, delay=None)
    created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    await fake.wait_for(lambda: fake.predictions[created.id].status == "processing")
    await asyncio.sleep(0.05)
    assert (await client.predictions.async_get(created.id)).status == "processing"
    await fake.complete(created.id, "failed", error="GPU fell over")
    done = await client.predictions.async_get(created.id)
    assert (done.status, done.error) == ("failed", "GPU fell over")


async def test_the_client_cannot_parse_an_aborted_prediction(
    fake: FakeReplicate, client: Client
) -> None:
    # Why the backend reads statuses through the raw request.
    fake.script(VEO, outcome="aborted")
    created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    assert (await wait_done(client, created.id))["status"] == "aborted"
    with pytest.raises(ValueError):
        await client.predictions.async_get(created.id)


async def test_prefer_wait_holds_the_create_until_done(fake: FakeReplicate, client: Client) -> None:
    fake.script(BARK, delay=0.1)
    created = await client.predictions.async_create(
        version=BARK_VERSION, input={"prompt": "x"}, wait=5
    )
    assert fake.requests[-1].headers["prefer"] == "wait=5"
    assert created.status == "succeeded"

    # Through `model=` the client drops `wait` before sending: no Prefer header.
    await client.predictions.async_create(model=VEO, input={"prompt": "x"}, wait=5)
    assert "prefer" not in fake.requests[-1].headers


async def test_rate_limited_create_carries_retry_after(fake: FakeReplicate, client: Client) -> None:
    fake.rate_limit_creates(1, retry_after=3)
    with pytest.raises(ReplicateError) as throttled:
        await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    assert throttled.value.status == 429
    assert "3 second" in (throttled.value.detail or "")
    assert fake.predictions == {}
    assert len(fake.creates(VEO)) == 1  # POST is not retried by the client


async def test_ambiguous_create_exists_although_the_client_saw_an_error(
    fake: FakeReplicate, client: Client
) -> None:
    fake.ambiguous_creates(1, status=500)
    with pytest.raises(ReplicateError) as failed:
        await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    assert failed.value.status == 500
    assert len(fake.predictions) == 1

    fake.ambiguous_creates(1, drop="disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.predictions.async_create(model=VEO, input={"prompt": "y"})
    assert len(fake.predictions) == 2


async def test_get_faults_and_unknown_ids(fake: FakeReplicate, client: Client) -> None:
    created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    fake.fail_next("get", 1, status=500)
    with pytest.raises(ReplicateError) as failed:
        await client.predictions.async_get(created.id)
    assert failed.value.status == 500
    assert (await client.predictions.async_get(created.id)).id == created.id
    with pytest.raises(ReplicateError) as missing:
        await client.predictions.async_get("doesnotexist")
    assert missing.value.status == 404


async def test_outputs_are_deleted_after_expiry(fake: FakeReplicate, client: Client) -> None:
    created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
    done = await wait_done(client, created.id)
    url = str(done["output"])
    assert (await fetch(url)).status_code == 200
    fake.expire_outputs(created.id)
    assert (await fetch(url)).status_code == 404
    assert (await wait_done(client, created.id))["data_removed"] is True


async def test_scripted_outputs_and_media(
    fake: FakeReplicate, client: Client, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42 real clip bytes")
    fake.set_media(VEO, clip)
    fake.script_next(1, model=VEO, output={"unexpected": 1})
    fake.script_next(1, model=VEO, output=None)
    fake.script_next(1, model=VEO, outcome="failed", error="CUDA out of memory")
    results = []
    for _ in range(4):
        created = await client.predictions.async_create(model=VEO, input={"prompt": "x"})
        results.append(await wait_done(client, created.id))
    assert results[0]["output"] == {"unexpected": 1}
    assert results[1]["status"] == "succeeded" and results[1]["output"] is None
    assert results[2]["status"] == "failed" and results[2]["error"] == "CUDA out of memory"
    assert (await fetch(str(results[3]["output"]))).content == clip.read_bytes()


async def test_webhooks_are_signed_like_replicate_and_may_come_twice(
    fake: FakeReplicate, client: Client
) -> None:
    secret = await client.webhooks.default.async_secret()
    assert secret.key == fake.webhook_secret
    fake.script(VEO, webhook_copies=2)
    async with WebhookSink() as sink:
        created = await client.predictions.async_create(
            model=VEO,
            input={"prompt": "x"},
            webhook=sink.url("/hooks/replicate?job=job-1"),
            webhook_events_filter=["completed"],
        )
        received = await sink.wait(2)
        await asyncio.sleep(0.05)
    assert len(sink.received) == 2  # only "completed", delivered twice
    (path, first_headers, first_body), (_, second_headers, second_body) = received
    assert path == "/hooks/replicate?job=job-1"
    assert first_headers["webhook-id"] == second_headers["webhook-id"]
    assert first_body == second_body
    for headers, body in received[0][1:], received[1][1:]:
        Webhooks.validate(
            headers=headers,
            body=body.decode(),
            secret=WebhookSigningSecret(key=secret.key),
            tolerance=300,
        )
    assert fake.webhook_deliveries[0].json["id"] == created.id
    assert fake.webhook_deliveries[0].json["status"] == "succeeded"
    assert fake.predictions_for_job("job-1")[0].id == created.id


async def test_failed_webhook_deliveries_are_retried_with_the_same_id(
    fake: FakeReplicate, client: Client
) -> None:
    async with WebhookSink(status=503) as sink:
        await client.predictions.async_create(
            model=VEO,
            input={"prompt": "x"},
            webhook=sink.url(),
            webhook_events_filter=["completed"],
        )
        await sink.wait(3)
    assert len({headers["webhook-id"] for _, headers, _ in sink.received}) == 1


async def test_replayed_webhook_is_byte_identical(fake: FakeReplicate, client: Client) -> None:
    async with WebhookSink() as sink:
        await client.predictions.async_create(
            model=VEO,
            input={"prompt": "x"},
            webhook=sink.url(),
            webhook_events_filter=["completed"],
        )
        await sink.wait(1)
        replay = await fake.replay_webhook(fake.webhook_deliveries[0])
        await sink.wait(2)
    assert replay.status == 200
    assert sink.received[0][1:] == sink.received[1][1:]


async def test_requests_are_recorded(fake: FakeReplicate, client: Client) -> None:
    started = time.monotonic()
    await client.predictions.async_create(model=VEO, input={"prompt": "hello"})
    record = fake.requests[-1]
    assert record.method == "POST" and record.status == 201
    assert record.json == {"input": {"prompt": "hello"}}
    assert record.headers["authorization"] == f"Bearer {fake.token}"
    assert record.at >= started
    assert [r.json["input"]["prompt"] for r in fake.creates(VEO)] == ["hello"]
