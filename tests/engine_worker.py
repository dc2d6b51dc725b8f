"""A bot process without chat adapters, for crash tests: `python -m tests.engine_worker
submit N` stores N jobs and works on them; `recover` restarts and finishes what is left.
Deliveries are appended to $DELIVERY_LOG, one line per copy sent: the job id, then
"resent" when its caption says it was sent again after a restart, else "first".
$LOKIZ_CRASH_AT arms the engine's named crash points (the process kills itself there)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.app import build_services
from core.catalogue import MUSIC, TEMPLATE, JobRequest
from core.jobs import Job
from core.notify import OutputMedia, Receipt
from core.screens import Screen
from core.settings import load_settings


class FileNotifier:
    platform = "telegram"

    def __init__(self, log: Path) -> None:
        self.log = log

    def upload_limit(self, job: Job) -> int:
        return 1 << 30

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        return f"status-{job.id}"

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        with self.log.open("a") as handle:
            kind = "resent" if "sent again after a restart" in screen.text else "first"
            handle.write(f"{job.id} {kind}\n")
            handle.flush()
            os.fsync(handle.fileno())
        return Receipt(message_id=f"m-{job.id}")


async def main(mode: str, count: int) -> None:
    services = await build_services(load_settings(None))
    services.engine.with_notifier(FileNotifier(Path(os.environ["DELIVERY_LOG"])))
    if mode == "submit":
        # Every job is stored before any runs, so the crash finds some still queued
        # however slow the submissions are on a busy machine.
        if services.engine.cluster is not None:
            await services.engine.cluster.open()
        image = os.environ["FRAME"]
        for i in range(count):
            user, _ = await services.ledger.ensure_user("telegram", str(100 + i % 4))
            if i % 3 == 2:
                request = JobRequest(MUSIC, prompt=f"song-{i}-end", seed=i)
            else:
                request = JobRequest(TEMPLATE, prompt=f"scene-{i}-end", image=image, seed=i)
            await services.engine.submit(user_id=user.id, platform="telegram", chat_id=str(i),
                                         language="en", request=request)
        print("submitted", flush=True)
    await services.engine.start()
    while True:
        unfinished = await services.jobs.with_status("queued", "running", "succeeded")
        if not unfinished and mode == "recover":
            break
        await asyncio.sleep(0.05)
    await services.close()
    print("all done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
