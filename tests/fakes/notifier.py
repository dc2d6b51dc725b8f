"""A notifier (the engine's chat port) that records what a chat would have seen."""

from __future__ import annotations

import asyncio
import time

from core.notify import OutputMedia, Receipt, RecipientGone
from core.screens import Screen


class RecordingNotifier:
    platform = "telegram"

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str, float]] = []
        self.delivered: list[tuple[str, OutputMedia, Screen]] = []
        self.fail_deliveries = 0
        self.gone = False
        self.done = asyncio.Event()

    def upload_limit(self, job) -> int:
        return 50 * 1024 * 1024

    async def show_status(self, job, screen: Screen) -> str | None:
        self.statuses.append((job.id, screen.text, time.monotonic()))
        return job.status_message_id or f"status-{job.id}"

    async def deliver(self, job, media: OutputMedia, screen: Screen) -> Receipt:
        if self.gone:
            raise RecipientGone("blocked")
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            raise ConnectionError("platform hiccup")
        self.delivered.append((job.id, media, screen))
        self.done.set()
        return Receipt(message_id=f"m-{job.id}", file_id=f"file-{job.id}")

    def texts(self, job_id: str) -> list[str]:
        return [text for jid, text, _ in self.statuses if jid == job_id]
