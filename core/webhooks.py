"""Verifying Replicate's webhooks (Standard Webhooks / svix signing).

A delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature`
headers; the signature is base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}"))
keyed with the base64 part of the `whsec_…` secret, sent as space-separated
`v1,<signature>` entries. A delivery may arrive twice (same `webhook-id`):
`SeenWebhooks` tells the first delivery from its repeats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE = 300  # seconds a signed timestamp may be off our clock

# WebhookRejected.reason values, so the HTTP route can log a stable word.
MISSING_HEADERS = "missing_headers"
EMPTY_BODY = "empty_body"
BAD_TIMESTAMP = "bad_timestamp"
STALE = "stale_timestamp"
FUTURE = "future_timestamp"
BAD_SIGNATURE = "bad_signature"


class WebhookRejected(Exception):
    """The delivery is not a genuine, fresh webhook; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_…` secret; ValueError when it is not one."""
    encoded = secret.strip()
    if encoded.startswith(SECRET_PREFIX):
        encoded = encoded[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not a whsec_ base64 key") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign_webhook(webhook_id: str, timestamp: str | int, body: bytes, secret: str) -> str:
    """The `webhook-signature` header value for a delivery (used by fakes and tests)."""
    digest = _digest(secret_key(secret), webhook_id, str(timestamp), body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Accept a delivery signed with `secret` within `tolerance` seconds, else raise.

    Raises `WebhookRejected` for a forged, tampered, stale or incomplete delivery
    and `ValueError` when `secret` itself is malformed (an operator error).
    """
    key = secret_key(secret)
    lowered = {name.lower(): value for name, value in headers.items()}
    webhook_id = lowered.get("webhook-id", "").strip()
    timestamp = lowered.get("webhook-timestamp", "").strip()
    signatures = lowered.get("webhook-signature", "").strip()
    if not (webhook_id and timestamp and signatures):
        raise WebhookRejected(MISSING_HEADERS)
    if not body:
        raise WebhookRejected(EMPTY_BODY)
    # ASCII only: str.isdigit() also takes "²" and "١٧٠٠", which int() rejects or reads.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise WebhookRejected(BAD_TIMESTAMP)
    age = (time.time() if now is None else now) - int(timestamp)
    if age > tolerance:
        raise WebhookRejected(STALE)
    if age < -tolerance:
        raise WebhookRejected(FUTURE)

    expected = _digest(key, webhook_id, timestamp, body)
    matched = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Keep comparing after a match so timing does not reveal which entry matched.
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise WebhookRejected(BAD_SIGNATURE)


def webhook_id_of(headers: Mapping[str, str]) -> str:
    """The `webhook-id` header (case-insensitive), or "" when absent."""
    for name, value in headers.items():
        if name.lower() == "webhook-id":
            return value.strip()
    return ""


class WebhookIds(Protocol):
    """Webhook ids already taken: in this process (`SeenWebhooks`) or by every instance
    (`core.redis_shared.RedisSeenWebhooks`)."""

    async def claim(self, webhook_id: str) -> bool:
        """True the first time `webhook_id` is offered, False for a repeat."""
        ...


class SeenWebhooks:
    """Remembers recent webhook ids (bounded, expiring) to spot repeated deliveries.

    Keep `ttl` at least the verification tolerance: an older replay already
    fails on its timestamp.
    """

    def __init__(self, *, max_size: int = 10_000, ttl: float = 2 * DEFAULT_TOLERANCE) -> None:
        self._max_size = max_size
        self._ttl = ttl
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, webhook_id: str, *, now: float | None = None) -> bool:
        """True the first time an id is offered (within `ttl`), False for a repeat."""
        moment = time.monotonic() if now is None else now
        self._expire(moment)
        if webhook_id in self._seen:
            return False
        self._seen[webhook_id] = moment
        while len(self._seen) > self._max_size:
            self._seen.popitem(last=False)
        return True

    async def claim(self, webhook_id: str) -> bool:
        return self.first_time(webhook_id)

    def __contains__(self, webhook_id: object) -> bool:
        return webhook_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, moment: float) -> None:
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if moment - seen_at <= self._ttl:
                break
            del self._seen[oldest_id]


def _digest(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> bytes:
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()
