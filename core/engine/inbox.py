"""The rendezvous between webhooks and the jobs waiting for them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from core.backends.base import Prediction


class WebhookInbox:
    """Finished predictions posted by webhooks, taken by the job that waits for each.

    A result may arrive before its job waits (a webhook that beats the create's answer):
    it is kept, up to `limit` of them, until taken or dropped.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._results: dict[str, Prediction] = {}
        self._events: dict[str, asyncio.Event] = {}

    def post(self, prediction: Prediction) -> bool:
        """Keep `prediction` for its waiter; True if a job is waiting for it here."""
        self._results[prediction.id] = prediction
        event = self._events.get(prediction.id)
        if event is not None:
            event.set()
            return True
        while len(self._results) > self._limit:
            self._results.pop(next(iter(self._results)))
        return False

    def watched(self, prediction_id: str) -> bool:
        """Whether a job here waits for `prediction_id`."""
        return prediction_id in self._events

    def take(self, prediction_id: str) -> Prediction | None:
        return self._results.pop(prediction_id, None)

    def drop(self, prediction_id: str) -> None:
        self._results.pop(prediction_id, None)

    @contextlib.contextmanager
    def watching(self, prediction_id: str) -> Iterator[None]:
        """While inside, webhooks for `prediction_id` wake `wait`."""
        self._events.setdefault(prediction_id, asyncio.Event())
        try:
            yield
        finally:
            self._events.pop(prediction_id, None)

    async def wait(self, prediction_id: str, timeout: float) -> Prediction | None:
        """The posted result, waiting at most `timeout` for one (inside `watching`)."""
        found = self.take(prediction_id)
        if found is not None:
            return found
        event = self._events.setdefault(prediction_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=timeout)
        event.clear()
        return self.take(prediction_id)
