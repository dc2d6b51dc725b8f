"""The job engine on a scripted backend: exactly one clip or exactly one refund."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from pathlib import Path

import pytest

from core.backends.base import ABORTED, CANCELED, FAILED, BackendError
from core.catalogue import (
    GLITCH_REPLACE,
    MUSIC,
    TEMPLATE,
    JobRequest,
    TemplateCatalogue,
    build_models,
)
from core.credits import CreditLedger
from core.engine import FairQueue, JobEngine, JobNotCancelable, JobNotYours, StatusPacer
from core.errors import InsufficientCredits, TooManyActiveJobs
from core.jobs import JobStore
from core.screens import Screen
from core.settings import load_settings
from core.users import UserDirectory
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier

# Each test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.both_stores


@pytest.fixture
async def world(db, tmp_path: Path):
    settings = load_settings(None)
    models = build_models(settings)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=100)
    output = tmp_path / "out.mp4"
    output.write_bytes(b"fake mp4 bytes")
    backend = ScriptedBackend(output_file=output)
    notifier = RecordingNotifier()
    engines: list[JobEngine] = []

    def make_engine(**overrides) -> JobEngine:
        options = dict(
            jobs=JobStore(db, ledger), ledger=ledger, models=models, backend=backend,
            notifiers={"telegram": notifier}, media_dir=tmp_path / "media",
            templates=TemplateCatalogue.load(), max_concurrent=4, max_active_per_user=2,
            timeout=5, status_interval=0.05, poll_initial=0.01, poll_max=0.02, progress_every=0.5,
        )
        options.update(overrides)
        engine = JobEngine(**options)
        engines.append(engine)
        return engine

    class World:
        pass

    w = World()
    w.db, w.ledger, w.models, w.backend, w.notifier, w.make_engine = db, ledger, models, backend, notifier, make_engine
    w.user = (await ledger.ensure_user("telegram", "100"))[0]
    w.other = (await ledger.ensure_user("telegram", "200"))[0]
    yield w
    for engine in engines:
        await engine.stop()


def template_request(tmp_path: Path | None = None, **options) -> JobRequest:
    return JobRequest(TEMPLATE, prompt="hug", image="/tmp/frame.jpg", template="ai_hug", options=options)


async def submit(engine: JobEngine, user, request=None, chat="1"):
    return await engine.submit(
        user_id=user.id, platform="telegram", chat_id=chat, language="en",
        request=request or template_request(), reply_to_message_id="5",
    )


async def until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def until_status(world, job_id: str, *statuses: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := await job_status(world, job_id)) not in statuses:
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {status}, not {statuses}")
        await asyncio.sleep(0.02)


async def job_status(world, job_id: str) -> str:
    job = await JobStore(world.db, world.ledger).get(job_id)
    return job.status


async def settled_status(world, job_id: str, expected: str, timeout: float = 5.0) -> str:
    """The job's status once it is `expected` (or the last seen): the engine records a
    delivery just after the chat has it, and another store's reader need not queue behind."""
    deadline = time.monotonic() + timeout
    status = await job_status(world, job_id)
    while status != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        status = await job_status(world, job_id)
    return status


async def test_a_job_is_charged_once_and_delivered_once(world):
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    assert await world.ledger.balance(world.user.id) == 80
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    await until(lambda: bool(world.notifier.texts(job.id)) and "sent below" in world.notifier.texts(job.id)[-1])
    assert await settled_status(world, job.id, "delivered") == "delivered"
    assert [d[0] for d in world.notifier.delivered] == [job.id]
    caption = world.notifier.delivered[0][2].text
    assert "AI hug" in caption and "20 credits" in caption and job.id in caption
    assert "queued" in world.notifier.texts(job.id)[0]
    assert await world.ledger.balance(world.user.id) == 80
    assert world.backend.creates == [job.id]


async def test_not_enough_credits_stores_nothing(world):
    engine = world.make_engine()
    await world.ledger.revoke(world.user.id, 90, actor="test")
    with pytest.raises(InsufficientCredits) as caught:
        await submit(engine, world.user)
    assert caught.value.params["shortfall"] == 10
    assert await JobStore(world.db, world.ledger).for_user(world.user.id) == []
    assert await world.ledger.balance(world.user.id) == 10


async def test_per_user_limit_refuses_the_third_job_without_charging(world):
    engine = world.make_engine()  # not started: jobs stay queued
    await submit(engine, world.user)
    await submit(engine, world.user)
    with pytest.raises(TooManyActiveJobs):
        await submit(engine, world.user)
    assert await world.ledger.balance(world.user.id) == 60


@pytest.mark.parametrize(
    ("status", "error", "reason_words"),
    [
        (FAILED, "CUDA out of memory", "ran into an error"),
        (FAILED, "Input flagged as sensitive", "rejected this input"),
        (CANCELED, None, "canceled"),
        (ABORTED, None, "stopped the run"),
    ],
)
async def test_an_unsuccessful_prediction_is_refunded_once_with_its_reason(world, status, error, reason_words):
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(status=status, error=error)
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: any("did not work" in text for text in world.notifier.texts(job.id)))
    failure = world.notifier.texts(job.id)[-1]
    assert reason_words in failure and "20 credits refunded" in failure
    assert await world.ledger.balance(world.user.id) == 100
    assert world.notifier.delivered == []
    refunds = [e for e in await world.ledger.history(world.user.id) if e.kind == "refund"]
    assert len(refunds) == 1


async def test_missing_or_malformed_output_is_refunded(world):
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(output={"unexpected": 1})
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: any("no clip" in text for text in world.notifier.texts(job.id)))
    assert await world.ledger.balance(world.user.id) == 100


async def test_cancel_while_queued_and_while_running_refunds_once(world):
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=30)
    engine = world.make_engine(max_concurrent=1)
    await engine.start()
    running = await submit(engine, world.user)
    queued = await submit(engine, world.user)
    await until(lambda: world.backend.creates == [running.id])
    assert engine.position(queued.id) == 1
    assert await engine.cancel(queued.id, user_id=world.user.id) == 20
    await until(lambda: running.id in world.backend.creates)
    await asyncio.sleep(0.05)
    assert await engine.cancel(running.id, user_id=world.user.id) == 20
    with pytest.raises(JobNotCancelable):
        await engine.cancel(running.id, user_id=world.user.id)
    assert world.backend.cancels == ["p1"]
    assert await world.ledger.balance(world.user.id) == 100
    assert world.backend.creates == [running.id]


async def test_someone_else_cannot_cancel_my_job(world):
    engine = world.make_engine()
    job = await submit(engine, world.user)
    with pytest.raises(JobNotYours):
        await engine.cancel(job.id, user_id=world.other.id)


async def test_deadline_cancels_the_prediction_and_refunds(world):
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=60)
    engine = world.make_engine(timeout=0.3)
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: any("too long" in text for text in world.notifier.texts(job.id)))
    assert world.backend.cancels == ["p1"]
    assert await job_status(world, job.id) == "timed_out"
    assert await world.ledger.balance(world.user.id) == 100


async def test_fair_queue_serves_users_in_turn():
    queue = FairQueue()
    for job in ("a1", "a2", "a3"):
        queue.push(1, job)
    queue.push(2, "b1")
    queue.push(3, "c1")
    assert queue.order() == ["a1", "b1", "c1", "a2", "a3"]
    assert queue.position("a2") == 4
    assert [queue.pop()[1] for _ in range(5)] == ["a1", "b1", "c1", "a2", "a3"]
    assert queue.pop() is None


async def test_one_user_flooding_does_not_starve_another(world):
    world.backend.scripts[world.models[MUSIC].model_id] = Script(seconds=0.2)
    engine = world.make_engine(max_concurrent=1, max_active_per_user=5)
    await world.ledger.grant(world.user.id, 100, actor="test")
    music = JobRequest(MUSIC, prompt="lofi")
    flood = [await submit(engine, world.user, music) for _ in range(4)]
    late = await submit(engine, world.other, music)
    assert engine.position(late.id) == 2  # right after the flooder's first job
    assert engine.position(flood[3].id) == 5


async def test_status_edits_are_throttled_and_the_last_one_lands():
    sent: list[tuple[str, float]] = []

    async def send(job_id: str, screen: Screen) -> None:
        sent.append((screen.text, time.monotonic()))

    pacer = StatusPacer(send, interval=0.2)
    for i in range(20):
        await pacer.update("j", Screen(f"update {i}"))
        await asyncio.sleep(0.01)
    await pacer.update("j", Screen("final"), final=True)
    assert sent[0][0] == "update 0" and sent[-1][0] == "final"
    assert len(sent) <= 4
    gaps = [b[1] - a[1] for a, b in zip(sent, sent[1:], strict=False)]
    assert all(gap >= 0.19 for gap in gaps)


async def test_restart_reattaches_running_jobs_and_delivers(world):
    world.backend.scripts[world.models[GLITCH_REPLACE].model_id] = Script(seconds=0.5)
    first = world.make_engine()
    await first.start()
    request = JobRequest(GLITCH_REPLACE, image="/tmp/me.jpg", clip="/tmp/clip.mp4")
    job = await submit(first, world.user, request)
    await until(lambda: world.backend.creates == [job.id])
    await asyncio.sleep(0.05)
    await first.stop()  # the process goes away mid-job
    assert await job_status(world, job.id) == "running"
    second = world.make_engine()
    counts = await second.recover()
    assert counts["running"] == 1
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert world.backend.creates == [job.id]  # re-attached, not created again
    await until(lambda: True)
    assert await world.ledger.balance(world.user.id) == 70


async def test_restart_after_upload_but_before_the_id_was_stored_adopts_the_prediction(world):
    store = JobStore(world.db, world.ledger)
    engine = world.make_engine()
    job = await submit(engine, world.user)
    spec = world.models[TEMPLATE]
    inputs = await world.backend.prepare(job.id, dict(spec.request_for(job.id, job.request).inputs))
    await store.record_creating(job.id, inputs)
    await world.backend.create(job.id, spec.model_id, inputs)  # created, then the crash
    await engine.stop()
    second = world.make_engine()
    await second.start()
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert len(world.backend.runs) == 1
    assert await world.ledger.balance(world.user.id) == 80


async def test_lost_local_prediction_is_run_again(world):
    world.backend.name = "local"
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=0.3)
    first = world.make_engine()
    await first.start()
    job = await submit(first, world.user)
    await until(lambda: world.backend.creates == [job.id])
    await first.stop()
    world.backend.runs.clear()  # local work died with the process
    second = world.make_engine()
    await second.start()
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert world.backend.creates == [job.id, job.id]
    assert await world.ledger.balance(world.user.id) == 80


async def test_create_errors_end_in_one_refund(world):
    world.backend.create_errors.append(BackendError("Unprocessable: bad image", status=422))
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: any("rejected this input" in t for t in world.notifier.texts(job.id)))
    assert await world.ledger.balance(world.user.id) == 100


async def test_a_chat_that_blocked_the_bot_does_not_break_the_engine(world):
    world.notifier.gone = True
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: True)
    for _ in range(200):
        if await job_status(world, job.id) == "failed":
            break
        await asyncio.sleep(0.02)
    assert await job_status(world, job.id) == "failed"
    assert await world.ledger.balance(world.user.id) == 100
    world.notifier.gone = False
    second = await submit(engine, world.other)
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert world.notifier.delivered[0][0] == second.id


async def test_a_send_refused_before_the_upload_is_retried_and_lands_once(world):
    world.notifier.fail_deliveries = 1  # connection refused: certainly not delivered
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await asyncio.wait_for(world.notifier.done.wait(), 8)
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == [job.id]
    assert await world.ledger.balance(world.user.id) == 80


async def test_sends_that_never_arrive_end_in_one_refund(world):
    world.notifier.refuse_deliveries = 5
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until_status(world, job.id, "failed", timeout=40)
    assert world.notifier.delivered_ids() == []
    assert await world.ledger.balance(world.user.id) == 100


@pytest.mark.parametrize("lost", ["reset", "5xx", "hang"])
async def test_a_lost_answer_after_the_send_is_retried_once_and_never_refunded(world, lost):
    world.notifier.lose_answers = [lost] * 5  # every send arrives, no answer ever does
    engine = world.make_engine(delivery_timeout=0.3)
    await engine.start()
    job = await submit(engine, world.user)
    await until_status(world, job.id, "delivered", timeout=15)
    await asyncio.sleep(0.3)
    assert world.notifier.delivered_ids() == [job.id, job.id], "retried at most once"
    stored = await JobStore(world.db, world.ledger).get(job.id)
    assert stored.delivery_unconfirmed
    assert await world.ledger.balance(world.user.id) == 80, "may have arrived: never refunded"
    assert [e.kind for e in await world.ledger.history(world.user.id) if e.job_id == job.id] == ["charge"]
    assert "sent below" in world.notifier.texts(job.id)[-1]


async def test_one_lost_answer_then_a_confirmed_send_is_delivered(world):
    world.notifier.lose_answers = ["5xx"]
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == [job.id, job.id]
    assert not (await JobStore(world.db, world.ledger).get(job.id)).delivery_unconfirmed
    assert await world.ledger.balance(world.user.id) == 80


async def test_a_platform_that_drops_duplicate_sends_gets_one_copy_despite_lost_answers(world):
    world.notifier.drops_duplicate_sends = True  # as Discord with a nonce
    world.notifier.lose_answers = ["reset"]
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == [job.id]


async def _succeeded_job_with_sends(world, engine, sends: int):
    """A job as a kill -9 leaves it: result downloaded, `sends` sends recorded, none confirmed."""
    store = JobStore(world.db, world.ledger)
    job = await submit(engine, world.user)
    output = world.backend.output_file
    async with world.db.transaction() as tx:
        await tx.execute(
            "UPDATE jobs SET status = 'succeeded', output_path = ?, prediction_id = 'p0',"
            " delivery_sends = ? WHERE id = ?",
            (str(output), sends, job.id),
        )
    await engine.stop()
    return await store.get(job.id)


async def test_after_a_crash_mid_send_telegram_sends_again_once_and_says_so(world):
    job = await _succeeded_job_with_sends(world, world.make_engine(), sends=1)
    engine = world.make_engine()
    await engine.start()
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == [job.id]
    assert "sent again after a restart" in world.notifier.delivered[0][2].text
    assert await world.ledger.balance(world.user.id) == 80


async def test_after_a_crash_mid_send_a_deduplicating_platform_sends_with_no_note(world):
    world.notifier.drops_duplicate_sends = True
    job = await _succeeded_job_with_sends(world, world.make_engine(), sends=1)
    engine = world.make_engine()
    await engine.start()
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == [job.id]
    assert "sent again" not in world.notifier.delivered[0][2].text


async def test_after_a_second_unconfirmed_send_a_restart_sends_nothing_and_never_refunds(world):
    job = await _succeeded_job_with_sends(world, world.make_engine(), sends=2)
    engine = world.make_engine()
    await engine.start()
    await until_status(world, job.id, "delivered")
    assert world.notifier.delivered_ids() == []
    assert (await JobStore(world.db, world.ledger).get(job.id)).delivery_unconfirmed
    assert await world.ledger.balance(world.user.id) == 80


async def test_a_job_that_may_have_been_sent_is_not_refunded_when_its_chat_is_gone(world):
    job = await _succeeded_job_with_sends(world, world.make_engine(), sends=1)
    world.notifier.gone = True
    engine = world.make_engine()
    await engine.start()
    await until_status(world, job.id, "delivered")
    assert await world.ledger.balance(world.user.id) == 80


async def test_cancel_during_an_in_flight_create_cancels_the_prediction(world):
    world.backend.create_delay = 0.3
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=30)
    engine = world.make_engine()
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: world.backend.creates == [job.id])  # sent; its answer is on the way
    assert await engine.cancel(job.id, user_id=world.user.id) == 20
    await until(lambda: all(run.canceled for run in world.backend.runs_of(job.id)))
    assert [run.id for run in world.backend.runs_of(job.id)] == world.backend.cancels == ["p1"]
    assert await job_status(world, job.id) == "canceled"
    assert await world.ledger.balance(world.user.id) == 100


async def test_cancel_raced_against_completion_ends_each_job_delivered_xor_refunded(world):
    rng = random.Random(9)
    world.backend.create_delay = 0.02
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=0.05)
    engine = world.make_engine(max_concurrent=16, max_active_per_user=100)
    await engine.start()
    users = [(await world.ledger.ensure_user("telegram", str(1000 + i)))[0] for i in range(8)]
    for user in users:
        await world.ledger.grant(user.id, 10_000, actor="test")

    async def one_round(user) -> str:
        job = await submit(engine, user, chat=str(user.id))
        await asyncio.sleep(rng.uniform(0, 0.6))  # before, during or after its completion
        with contextlib.suppress(JobNotCancelable):
            await engine.cancel(job.id, user_id=user.id)
        return job.id

    job_ids = [jid for _ in range(6) for jid in await asyncio.gather(*(one_round(u) for u in users))]
    store = JobStore(world.db, world.ledger)
    ended = ("delivered", "failed", "canceled", "timed_out")
    for job_id in job_ids:
        await until_status(world, job_id, *ended, timeout=20)
    await asyncio.sleep(0.2)  # let any late create answer or cancel settle
    async with world.db.read() as tx:
        entries = await tx.fetchall("SELECT kind, job_id FROM ledger WHERE job_id IS NOT NULL")
    charges = [e["job_id"] for e in entries if e["kind"] == "charge"]
    refunds = [e["job_id"] for e in entries if e["kind"] == "refund"]
    delivered = world.notifier.delivered_ids()
    outcomes = {"delivered": 0, "canceled": 0}
    for job_id in job_ids:
        job = await store.get(job_id)
        outcomes[job.status] = outcomes.get(job.status, 0) + 1
        assert charges.count(job_id) == 1, "charged once"
        if job.status == "delivered":
            assert delivered.count(job_id) == 1 and refunds.count(job_id) == 0
        else:
            assert delivered.count(job_id) == 0 and refunds.count(job_id) == 1
            runs = world.backend.runs_of(job_id)
            assert all(run.canceled for run in runs), f"{job_id}: a canceled job's prediction runs on"
    assert outcomes["delivered"] and outcomes["canceled"], outcomes  # the race went both ways
    for user in users:
        assert await world.ledger.balance(user.id) == await world.ledger.ledger_sum(user.id)


async def test_webhook_wakes_the_job_and_duplicates_are_harmless(world):
    world.backend.supports_webhooks = True
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=0.1)
    engine = world.make_engine(webhook_url="http://127.0.0.1/webhooks/replicate", webhook_fallback=30)
    await engine.start()
    job = await submit(engine, world.user)
    await until(lambda: world.backend.creates == [job.id])
    await asyncio.sleep(0.15)
    prediction = world.backend.status_of("p1")
    assert await engine.on_webhook(prediction)
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    await engine.on_webhook(prediction)  # the same webhook again
    await asyncio.sleep(0.1)
    assert len(world.notifier.delivered) == 1
    assert world.backend.gets == 0  # no polling for a job whose webhook arrived


async def test_a_webhook_that_beats_the_create_answer_is_not_lost(world):
    world.backend.supports_webhooks = True
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=0)
    engine = world.make_engine(webhook_url="http://127.0.0.1/webhooks/replicate", webhook_fallback=30)
    create = world.backend.create

    async def create_then_webhook(job_id, model, inputs, *, webhook_url=None):
        prediction_id = await create(job_id, model, inputs, webhook_url=webhook_url)
        await engine.on_webhook(world.backend.status_of(prediction_id))  # before the id is stored
        return prediction_id

    world.backend.create = create_then_webhook
    await engine.start()
    await submit(engine, world.user)
    await asyncio.wait_for(world.notifier.done.wait(), 5)  # not after the 30 s fallback
    assert world.backend.gets == 0


async def test_a_webhook_after_the_id_is_stored_but_before_the_job_runs_is_not_lost(world):
    world.backend.supports_webhooks = True
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=0)
    engine = world.make_engine(webhook_url="http://127.0.0.1/webhooks/replicate", webhook_fallback=30)
    set_running = engine.jobs.set_running

    async def webhook_then_set_running(job_id, prediction_id, deadline_at):
        await engine.on_webhook(world.backend.status_of(prediction_id))  # the id is stored by now
        return await set_running(job_id, prediction_id, deadline_at)

    engine.jobs.set_running = webhook_then_set_running
    await engine.start()
    await submit(engine, world.user)
    await asyncio.wait_for(world.notifier.done.wait(), 5)  # not after the 30 s fallback
    assert world.backend.gets == 0


async def test_a_job_an_older_version_left_mid_create_is_looked_up_not_created_again(world):
    engine = world.make_engine()
    job = await submit(engine, world.user)
    spec = world.models[TEMPLATE]
    inputs = await world.backend.prepare(job.id, dict(spec.request_for(job.id, job.request).inputs))
    async with world.db.transaction() as tx:  # what it stored before its create (no creating mark)
        await tx.execute("UPDATE jobs SET prepared_inputs = ? WHERE id = ?", (json.dumps(inputs), job.id))
    await world.backend.create(job.id, spec.model_id, inputs)  # created, then the crash
    await engine.stop()
    second = world.make_engine()
    await second.start()
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert len(world.backend.runs) == 1


async def test_a_cancel_racing_the_create_still_stops_the_prediction(world):
    world.backend.scripts[world.models[TEMPLATE].model_id] = Script(seconds=30)
    engine = world.make_engine()
    finish = engine.jobs.finish_unsuccessfully

    async def slow_finish(*args, **kwargs):
        await until(lambda: world.backend.creates != [])  # the create lands meanwhile
        await asyncio.sleep(0.05)
        return await finish(*args, **kwargs)

    engine.jobs.finish_unsuccessfully = slow_finish
    await engine.start()
    job = await submit(engine, world.user)
    assert await engine.cancel(job.id, user_id=world.user.id) == 20
    assert world.backend.cancels == ["p1"]
    assert await job_status(world, job.id) == "canceled"


async def test_a_restart_in_one_process_waits_for_the_create_still_in_flight(world):
    gate = asyncio.Event()
    create = world.backend.create

    async def slow_create(job_id, model, inputs, *, webhook_url=None):
        await gate.wait()  # the create request is on the way
        return await create(job_id, model, inputs, webhook_url=webhook_url)

    world.backend.create = slow_create
    first = world.make_engine()
    await first.start()
    job = await submit(first, world.user)
    store = JobStore(world.db, world.ledger)
    for _ in range(200):
        record = await store.start_record(job.id)
        if record and record.creating_since:
            break
        await asyncio.sleep(0.01)
    await first.stop()  # the job's task is stopped mid-create
    second = world.make_engine()
    await second.start()
    await asyncio.sleep(0.1)
    gate.set()
    await asyncio.wait_for(world.notifier.done.wait(), 5)
    assert world.backend.creates == [job.id]
