"""A notifier (the engine's chat port) that records what a chat would have seen.

Sends can be scripted to fail *before* anything reaches the chat (`fail_deliveries`,
`refuse_deliveries`) or to lose their answer *after* the chat got the clip
(`lose_answers`: "reset" drops the connection, "5xx" answers a server error,
"hang" never answers). `drops_duplicate_sends` behaves like Discord's nonce: a
second send of the same job returns the first message instead of posting again.
"""

from __future__ import annotations

import asyncio
import time

from core.notify import MaybeDelivered, NotDelivered, OutputMedia, Receipt, RecipientGone
from core.screens import Screen


class RecordingNotifier:
    platform = "telegram"

    def __init__(self) -> None:
        self.statuses: list[tuple[str, str, float]] = []
        self.delivered: list[tuple[str, OutputMedia, Screen]] = []
        self.edited: list[tuple[str, str, Screen]] = []
        self.fail_deliveries = 0
        self.refuse_deliveries = 0
        self.lose_answers: list[str] = []
        self.drops_duplicate_sends = False
        self.gone = False
        self.done = asyncio.Event()
        self._receipts: dict[str, Receipt] = {}

    def upload_limit(self, job) -> int:
        return 50 * 1024 * 1024

    async def show_status(self, job, screen: Screen) -> str | None:
        self.statuses.append((job.id, screen.text, time.monotonic()))
        return job.status_message_id or f"status-{job.id}"

    async def edit_buttons(self, chat_id: str, message_id: str, screen: Screen) -> None:
        self.edited.append((chat_id, message_id, screen))

    async def deliver(self, job, media: OutputMedia, screen: Screen) -> Receipt:
        if self.gone:
            raise RecipientGone("blocked")
        if self.fail_deliveries:
            self.fail_deliveries -= 1
            raise ConnectionRefusedError("platform hiccup")
        if self.refuse_deliveries:
            self.refuse_deliveries -= 1
            raise NotDelivered("400 before the upload")
        if self.drops_duplicate_sends and job.id in self._receipts:
            receipt = self._receipts[job.id]
        else:
            self.delivered.append((job.id, media, screen))
            receipt = Receipt(message_id=f"m-{job.id}-{len(self.delivered)}", file_id=f"file-{job.id}")
            self._receipts[job.id] = receipt
            self.done.set()
        if self.lose_answers:
            lost = self.lose_answers.pop(0)
            if lost == "reset":
                raise ConnectionResetError("connection reset by peer")
            if lost == "5xx":
                raise MaybeDelivered("502 Bad Gateway after the upload")
            if lost == "hang":
                await asyncio.sleep(3600)
        return receipt

    def delivered_ids(self) -> list[str]:
        return [job_id for job_id, _, _ in self.delivered]

    def texts(self, job_id: str) -> list[str]:
        return [text for jid, text, _ in self.statuses if jid == job_id]
