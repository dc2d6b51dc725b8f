"""Replicate's webhooks: verified with the account's signing secret, read as predictions."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping

from core.backends.base import BackendError, Prediction, WebhookInvalid
from core.backends.replicate.payloads import parse_prediction_payload
from core.webhooks import verify_webhook


class WebhookReader:
    """Verifies deliveries (Standard Webhooks signing) and parses their prediction.

    The secret is the configured one, or else fetched once from the API.
    """

    def __init__(self, configured: str | None, fetch: Callable[[], Awaitable[str]]) -> None:
        self._secret = configured or None
        self._fetch = fetch

    async def secret(self) -> str:
        if self._secret is None:
            self._secret = await self._fetch()
        return self._secret

    async def parse(self, headers: Mapping[str, str], body: bytes) -> Prediction:
        """See `Backend.parse_webhook`."""
        secret = await self.secret()
        try:
            verify_webhook(headers, body, secret, now=time.time())
        except ValueError as exc:  # a malformed secret: the operator's error
            raise BackendError(f"cannot verify webhooks: {exc}") from None
        try:
            return parse_prediction_payload(json.loads(body))
        except (ValueError, BackendError) as exc:
            raise WebhookInvalid(f"webhook body is not a prediction: {exc}") from None
