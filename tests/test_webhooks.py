"""Webhook verification: genuine deliveries pass; forged, stale and replayed ones do not."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from replicate.webhook import Webhooks, WebhookSigningSecret

from core.backends.base import WebhookInvalid, WebhooksUnsupported
from core.backends.local import LocalBackend
from core.backends.replicate import ReplicateBackend
from core.webhooks import (
    BAD_SIGNATURE,
    BAD_TIMESTAMP,
    EMPTY_BODY,
    FUTURE,
    MISSING_HEADERS,
    STALE,
    SeenWebhooks,
    WebhookRejected,
    sign_webhook,
    verify_webhook,
    webhook_id_of,
)
from tests.fakes.replicate import FakeReplicate

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_700_000_000
BODY = json.dumps({"id": "p1", "status": "succeeded", "output": "https://x/y.mp4"}).encode()


def delivery(
    body: bytes = BODY, *, webhook_id: str = "msg_1", timestamp: int = NOW, secret: str = SECRET
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_webhook(webhook_id, timestamp, body, secret),
    }


def rejection(
    headers: dict[str, str], body: bytes = BODY, *, now: int = NOW, tolerance: int = 300
) -> str:
    with pytest.raises(WebhookRejected) as rejected:
        verify_webhook(headers, body, SECRET, now=now, tolerance=tolerance)
    return rejected.value.reason


def test_a_genuine_delivery_verifies() -> None:
    verify_webhook(delivery(), BODY, SECRET, now=NOW)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.title(): value for name, value in delivery().items()}
    verify_webhook(headers, BODY, SECRET, now=NOW)
    assert webhook_id_of(headers) == "msg_1"


def test_any_matching_entry_of_several_signatures_is_enough() -> None:
    other = sign_webhook("msg_1", NOW, BODY, "whsec_" + base64.b64encode(b"k" * 32).decode())
    headers = delivery()
    headers["webhook-signature"] = f"v1a,junk {other} v1,!!notbase64 {headers['webhook-signature']}"
    verify_webhook(headers, BODY, SECRET, now=NOW)


def test_the_secret_prefix_is_optional() -> None:
    verify_webhook(delivery(), BODY, SECRET.removeprefix("whsec_"), now=NOW)


def test_signatures_match_the_official_client_and_the_fake() -> None:
    headers = delivery()
    Webhooks.validate(headers=headers, body=BODY.decode(), secret=WebhookSigningSecret(key=SECRET))
    fake = FakeReplicate(webhook_secret=SECRET)
    verify_webhook(fake.signed_headers(BODY, timestamp=NOW), BODY, SECRET, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_rejected(missing: str) -> None:
    headers = delivery()
    del headers[missing]
    assert rejection(headers) == MISSING_HEADERS


def test_empty_body_is_rejected() -> None:
    assert rejection(delivery(b""), b"") == EMPTY_BODY


def test_forged_signature_is_rejected() -> None:
    forged = delivery(secret="whsec_" + base64.b64encode(b"attacker key").decode())
    assert rejection(forged) == BAD_SIGNATURE


def test_tampered_body_is_rejected() -> None:
    assert rejection(delivery(), BODY.replace(b"succeeded", b"failed\x20\x20\x20")) == BAD_SIGNATURE


def test_signature_for_another_id_is_rejected() -> None:
    headers = delivery()
    headers["webhook-id"] = "msg_2"
    assert rejection(headers) == BAD_SIGNATURE


@pytest.mark.parametrize(
    "timestamp", ["soon", "-5", "1.5e9", "9" * 20, "١٧٠٠٠٠٠٠٠٠", "²", "17000000²", "１７００００００００"]
)
def test_garbage_timestamps_are_rejected(timestamp: str) -> None:
    headers = delivery()
    headers["webhook-timestamp"] = timestamp
    assert rejection(headers) == BAD_TIMESTAMP


def test_stale_and_future_deliveries_are_rejected() -> None:
    assert rejection(delivery(timestamp=NOW - 301)) == STALE
    assert rejection(delivery(timestamp=NOW + 301)) == FUTURE
    verify_webhook(delivery(timestamp=NOW - 299), BODY, SECRET, now=NOW)
    assert rejection(delivery(timestamp=NOW - 100), tolerance=60) == STALE


def test_a_replay_verifies_while_fresh_but_is_caught_as_seen_then_goes_stale() -> None:
    headers = delivery()
    seen = SeenWebhooks()
    verify_webhook(headers, BODY, SECRET, now=NOW)
    assert seen.first_time(webhook_id_of(headers), now=0.0)
    verify_webhook(headers, BODY, SECRET, now=NOW + 10)  # the signature is still valid…
    assert not seen.first_time(webhook_id_of(headers), now=10.0)  # …but it is a repeat
    assert rejection(headers, now=NOW + 3600) == STALE


def test_malformed_secret_is_an_operator_error() -> None:
    with pytest.raises(ValueError):
        verify_webhook(delivery(), BODY, "whsec_not base64!", now=NOW)


def test_seen_webhooks_expire_and_stay_bounded() -> None:
    seen = SeenWebhooks(max_size=3, ttl=10)
    assert seen.first_time("a", now=0)
    assert not seen.first_time("a", now=5)
    assert seen.first_time("a", now=11)  # forgotten after the ttl
    for name in "bcde":
        seen.first_time(name, now=12)
    assert len(seen) == 3 and "a" not in seen


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=1, max_size=2048),
    webhook_id=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
    ),
    age=st.integers(min_value=-300, max_value=300),
)
def test_any_correctly_signed_body_verifies(body: bytes, webhook_id: str, age: int) -> None:
    headers = delivery(body, webhook_id=webhook_id, timestamp=NOW - age)
    verify_webhook(headers, body, SECRET, now=NOW)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(min_size=1, max_size=2048), data=st.data())
def test_any_single_byte_change_fails(body: bytes, data: st.DataObject) -> None:
    headers = delivery(body)
    position = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    replacement = data.draw(
        st.integers(min_value=0, max_value=255).filter(lambda b: b != body[position])
    )
    changed = body[:position] + bytes([replacement]) + body[position + 1 :]
    with pytest.raises(WebhookRejected) as rejected:
        verify_webhook(headers, changed, SECRET, now=NOW)
    assert rejected.value.reason == BAD_SIGNATURE


# --- webhooks through the generation port -----------------------------------------------


async def test_the_replicate_port_verifies_and_reads_a_delivery() -> None:
    backend = ReplicateBackend("r8_test", "http://127.0.0.1:9", webhook_secret=SECRET)
    try:
        now = int(time.time())
        prediction = await backend.parse_webhook(delivery(timestamp=now), BODY)
        assert (prediction.id, prediction.status, prediction.output) == (
            "p1", "succeeded", "https://x/y.mp4"
        )
        forged = delivery(timestamp=now, secret="whsec_" + base64.b64encode(b"k" * 32).decode())
        with pytest.raises(WebhookRejected):
            await backend.parse_webhook(forged, BODY)
        garbage = b'{"status": "succeeded"}'
        with pytest.raises(WebhookInvalid):
            await backend.parse_webhook(delivery(garbage, timestamp=now), garbage)
    finally:
        await backend.close()


async def test_the_local_port_receives_no_webhooks(tmp_path: Path) -> None:
    with pytest.raises(WebhooksUnsupported):
        await LocalBackend(tmp_path).parse_webhook(delivery(), BODY)


def test_the_http_layer_does_not_load_replicate_on_the_local_backend(tmp_path: Path) -> None:
    script = f"""
import asyncio, sys
from bot.app import build_services
from core.settings import load_settings

async def main():
    settings = load_settings(None, database_url="sqlite:///{tmp_path / 'l.db'}",
                             media_dir=r"{tmp_path / 'm'}", generator="local", http_port=0)
    services = await build_services(settings)
    await services.http.start()
    await services.close()

asyncio.run(main())
assert "core.http" in sys.modules and "core.backends.local" in sys.modules
loaded = sorted(name for name in sys.modules
                if name == "replicate" or name.startswith(("replicate.", "core.backends.replicate")))
print("loaded:", loaded)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "loaded: []"
