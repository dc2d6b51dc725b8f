"""Delivering through the real Telegram notifier (aiogram against the fake Bot API) when
the answer to a send is lost *after* Telegram posted the clip: at most one retry, never
refunded; a send Telegram refused is retried and, if it never lands, refunded once."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.telegram.notifier import TelegramNotifier
from adapters.telegram.outbox import MediaSender
from core.catalogue import TEMPLATE, JobRequest, TemplateCatalogue, build_models
from core.credits import CreditLedger
from core.engine import JobEngine
from core.jobs import JobStore
from core.media_store import MediaStore
from core.platform_files import PlatformFiles
from core.settings import load_settings
from core.users import UserDirectory
from tests.fakes.backend import ScriptedBackend
from tests.fakes.telegram import ChatUser, TelegramFake


class Rig:
    fake: TelegramFake
    engine: JobEngine
    jobs: JobStore
    ledger: CreditLedger
    chat: ChatUser
    user: Any

    async def submit(self) -> str:
        job = await self.engine.submit(
            user_id=self.user.id, platform="telegram", chat_id=str(self.chat.chat_id), language="en",
            request=JobRequest(TEMPLATE, prompt="hug", image="/tmp/frame.jpg", template="ai_hug"),
        )
        return job.id

    async def ended(self, job_id: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.jobs.get(job_id)
            assert job is not None
            if job.status in ("delivered", "failed"):
                return job.status
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job.status}\n{self.fake.describe()}")
            await asyncio.sleep(0.02)

    def videos(self) -> list[Any]:
        """Every clip the chat got, as a list (a duplicate shows)."""
        return [m for m in self.fake.bot_messages(self.chat.chat_id) if m.video is not None]


@pytest.fixture
async def rig(db, tmp_path: Path, av_video: Path) -> AsyncIterator[Rig]:
    output = tmp_path / "out.mp4"
    shutil.copyfile(av_video, output)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=100)
    async with TelegramFake() as fake:
        bot = fake.make_bot()
        r = Rig()
        r.fake, r.ledger, r.jobs = fake, ledger, JobStore(db, ledger)
        r.chat = ChatUser(fake, 4242, "Ana")
        await r.chat.send_text("/start")
        r.user = (await ledger.ensure_user("telegram", "4242"))[0]
        sender = MediaSender(bot, PlatformFiles(db, MediaStore(tmp_path / "store")))
        notifier = TelegramNotifier(bot, sender, local_server=False)
        r.engine = JobEngine(
            jobs=r.jobs, ledger=ledger, models=build_models(load_settings(None)),
            backend=ScriptedBackend(output_file=output), notifiers={"telegram": notifier},
            media_dir=tmp_path / "media", templates=TemplateCatalogue.load(),
            status_interval=0.05, poll_initial=0.01, poll_max=0.02, delivery_timeout=1.0,
        )
        await r.engine.start()
        try:
            yield r
        finally:
            await r.engine.stop()
            await bot.session.close()


@pytest.mark.parametrize(
    "lost",
    [
        {"disconnect": True, "code": None},  # posted, then the connection drops
        {"code": 502},  # posted, then a 5xx
        {"code": None, "delay": 3.0},  # posted, the answer comes after we stopped waiting (1 s)
    ],
    ids=["reset", "5xx", "timeout"],
)
async def test_a_clip_whose_answer_is_lost_is_sent_at_most_twice_and_never_refunded(rig: Rig, lost):
    if "delay" not in lost:
        rig.engine.delivery_timeout = 30.0  # only the lost answer may end the send
    rig.fake.fail_next("sendVideo", times=2, after=True, **lost)
    job_id = await rig.submit()
    assert await rig.ended(job_id) == "delivered"
    await asyncio.sleep(0.2)
    sends = rig.fake.calls_of("sendVideo")
    assert len(sends) == 2 and all(call.answer_lost for call in sends), "one retry, no more"
    assert len(rig.videos()) == 2
    job = await rig.jobs.get(job_id)
    assert job is not None and job.delivery_unconfirmed
    assert await rig.ledger.balance(rig.user.id) == 80, "it may have arrived: never refunded"


async def test_one_lost_answer_then_a_confirmed_send_is_delivered_and_charged(rig: Rig):
    rig.engine.delivery_timeout = 30.0
    rig.fake.fail_next("sendVideo", code=500, after=True)
    job_id = await rig.submit()
    assert await rig.ended(job_id) == "delivered"
    assert len(rig.fake.calls_of("sendVideo")) == 2
    job = await rig.jobs.get(job_id)
    assert job is not None and not job.delivery_unconfirmed
    assert job.delivered_message_id == str(rig.videos()[-1].message_id)
    assert await rig.ledger.balance(rig.user.id) == 80


async def test_a_send_refused_before_the_upload_is_retried_and_lands_once(rig: Rig):
    rig.fake.fail_next("sendVideo", code=400, description="Bad Request: wrong parameters")
    job_id = await rig.submit()
    assert await rig.ended(job_id) == "delivered"
    assert len(rig.videos()) == 1
    assert await rig.ledger.balance(rig.user.id) == 80
