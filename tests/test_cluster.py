"""Jobs on procrastinate (PostgreSQL mode), in one process: the queue entry commits with
the job and its charge; a token run twice still makes one charge, one prediction, one
delivery; MAX_CONCURRENT_JOBS holds across workers; the fair order and positions come
from the database; a webhook landing on one instance wakes the waiter on another."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from core.backends.base import SUCCEEDED, Prediction
from core.catalogue import MUSIC, JobRequest, TemplateCatalogue, build_models
from core.credits import CreditLedger
from core.engine import JobEngine
from core.engine.cluster import RUN_TASK
from core.jobs import Job, JobStatus, JobStore, new_job_id
from core.settings import load_settings
from core.storage.postgres import PostgresDatabase
from core.users import UserDirectory
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class World:
    def __init__(self, db: PostgresDatabase, tmp_path: Path) -> None:
        self.db = db
        self.tmp_path = tmp_path
        self.ledger = CreditLedger(db, UserDirectory(db), starter_credits=100)
        output = tmp_path / "out.wav"
        output.write_bytes(b"RIFF fake wav")
        self.backend = ScriptedBackend(output_file=output)
        self.notifier = RecordingNotifier()
        self.models = build_models(load_settings(None))
        self.engines: list[JobEngine] = []

    def engine(self, name: str, *, ceiling: int = 4, concurrency: int = 20) -> JobEngine:
        engine = JobEngine(
            jobs=JobStore(self.db, self.ledger), ledger=self.ledger, models=self.models,
            backend=self.backend, notifiers={"telegram": self.notifier},
            media_dir=self.tmp_path / name, templates=TemplateCatalogue.load(),
            max_concurrent=ceiling, max_active_per_user=2, timeout=10, status_interval=0.05,
            poll_initial=0.01, poll_max=0.05, progress_every=1.0, instance_id=name,
        )
        engine.use_cluster(self.db, concurrency=concurrency, drain_seconds=5)
        self.engines.append(engine)
        return engine

    async def user(self, name: str) -> int:
        return (await self.ledger.ensure_user("telegram", name))[0].id

    async def submit(self, engine: JobEngine, user_id: int, prompt: str = "a") -> Job:
        return await engine.submit(user_id=user_id, platform="telegram", chat_id=str(user_id),
                                   language="en", request=JobRequest(MUSIC, prompt=prompt))

    async def status(self, job_id: str) -> str:
        job = await JobStore(self.db, self.ledger).get(job_id)
        assert job is not None
        return job.status

    async def until_ended(self, job_ids: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = [await self.status(j) for j in job_ids]
            if all(s in ("delivered", "failed", "canceled", "timed_out") for s in states):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"jobs not ended: {states}")
            await asyncio.sleep(0.05)


@pytest.fixture
async def world(database_url: str, tmp_path: Path):
    db = await PostgresDatabase.open(database_url)
    await db.migrate()
    w = World(db, tmp_path)
    yield w
    for engine in w.engines:
        await engine.stop()
    await db.close()


async def test_the_queue_entry_commits_with_the_job_and_its_charge_or_neither(world: World):
    engine = world.engine("a")
    await engine.start(worker=False)
    user = await world.user("1")
    job = await world.submit(engine, user)
    assert await engine.jobs.tasks_pending(RUN_TASK) == 1
    assert await world.ledger.balance(user) == 100 - job.price

    class Boom(Exception):
        pass

    doomed = Job(**{**job.__dict__, "id": new_job_id()})
    with pytest.raises(Boom):
        async with world.db.transaction() as tx:
            await engine.jobs.insert(tx, doomed)
            await world.ledger.charge(tx, user, doomed.price, job_id=doomed.id, reason=MUSIC)
            assert engine.cluster is not None
            await engine.cluster.defer(tx, doomed.id)
            raise Boom
    assert await engine.jobs.get(doomed.id) is None
    assert await engine.jobs.tasks_pending(RUN_TASK) == 1  # only the first job's
    assert await world.ledger.balance(user) == 100 - job.price
    charges = [e for e in await world.ledger.history(user) if e.kind == "charge"]
    assert [e.job_id for e in charges] == [job.id]


@pytest.mark.parametrize("concurrently", [True, False])
async def test_a_token_run_twice_charges_once_predicts_once_delivers_once(
    world: World, concurrently: bool
):
    engine = world.engine("a")
    await engine.start(worker=False)  # the test runs the task function itself
    assert engine.cluster is not None
    user = await world.user("1")
    job = await world.submit(engine, user)
    world.backend.scripts[world.models[MUSIC].model_id] = Script(seconds=0.3)
    if concurrently:
        await asyncio.gather(engine.cluster._run_token(job.id), engine.cluster._run_token(job.id))
    else:
        await engine.cluster._run_token(job.id)
        await engine.cluster._run_token(job.id)
    # A second process running the same token once more finds nothing to do either.
    other = world.engine("b")
    await other.start(worker=False)
    assert other.cluster is not None
    await other.cluster._run_token(job.id)
    assert await world.status(job.id) == "delivered"
    assert Counter(j for j, _, _ in world.notifier.delivered) == {job.id: 1}
    assert world.backend.creates == [job.id]
    history = await world.ledger.history(user)
    assert Counter(e.kind for e in history if e.job_id == job.id) == {"charge": 1}
    assert await world.ledger.balance(user) == 100 - job.price


async def test_the_ceiling_holds_across_two_workers_and_every_job_ends_once(world: World):
    world.backend.scripts[world.models[MUSIC].model_id] = Script(seconds=0.4)
    first, second = world.engine("a", ceiling=2), world.engine("b", ceiling=2)
    for engine in (first, second):
        await engine.start(worker=False)
    jobs = []
    for i in range(8):
        jobs.append(await world.submit(first, await world.user(f"u{i}"), prompt=f"p{i}"))
    for engine in (first, second):
        assert engine.cluster is not None
        await engine.cluster.start_worker()
    peak = 0
    seen_running: Counter[str] = Counter()
    deadline = time.monotonic() + 40
    while True:
        counts = await first.jobs.counts_by_status()
        peak = max(peak, counts["running"])
        for engine in (first, second):
            seen_running[engine.instance_id] += len(engine._steps)
        if counts["delivered"] + counts["failed"] == len(jobs) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert [await world.status(j.id) for j in jobs] == ["delivered"] * len(jobs)
    assert peak <= 2 and peak >= 1
    assert seen_running["a"] and seen_running["b"]  # both workers took jobs
    assert Counter(j for j, _, _ in world.notifier.delivered) == Counter(j.id for j in jobs)
    assert sorted(world.backend.creates) == sorted(j.id for j in jobs)


async def test_fair_order_and_positions_come_from_the_database(world: World):
    engine = world.engine("a")
    await engine.start(worker=False)
    heavy, light = await world.user("heavy"), await world.user("light")
    h1 = await world.submit(engine, heavy, "h1")
    h2 = await world.submit(engine, heavy, "h2")
    l1 = await world.submit(engine, light, "l1")
    # Round-robin across users: the light user's first job goes before the heavy one's second.
    assert [await engine.queue_position(j.id) for j in (h1, l1, h2)] == [1, 2, 3]
    assert world.notifier.statuses  # each heard its place when queued
    assert engine.cluster is not None
    kind, held = await engine.jobs.admit("a", 10, 4, ["telegram"], lock_key=1)
    assert (kind, held) == ("job", h1.id)
    assert [await engine.queue_position(j.id) for j in (l1, h2)] == [1, 2]
    assert await engine.queue_position(h1.id) is None  # held: not waiting any more


async def test_a_webhook_on_one_instance_wakes_the_waiter_on_another(world: World):
    waiter, receiver = world.engine("a"), world.engine("b")
    for engine in (waiter, receiver):
        await engine.start(worker=False)
    assert waiter.cluster is not None
    waiter.cluster.listen_webhooks()
    user = await world.user("1")
    job = await world.submit(receiver, user)
    # The scripted prediction never finishes by polling within the test: only the webhook
    # (recorded by the other instance, read back here) can end the wait.
    waiter.runner.settings.poll_initial = waiter.runner.settings.poll_max = 30.0
    world.backend.scripts[world.models[MUSIC].model_id] = Script(seconds=60)
    await asyncio.sleep(0.3)  # the listener is connected
    run = asyncio.create_task(waiter.cluster._run_token(job.id))
    deadline = time.monotonic() + 10
    while (stored := await waiter.jobs.get(job.id)) is None or stored.prediction_id is None:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    prediction = Prediction(stored.prediction_id, SUCCEEDED, output=world.backend.output_file.as_uri())
    assert await receiver.on_webhook(prediction)
    await asyncio.wait_for(run, 10)
    assert await world.status(job.id) == JobStatus.DELIVERED
    assert Counter(j for j, _, _ in world.notifier.delivered) == {job.id: 1}


async def test_a_job_left_without_a_token_while_others_run_gets_one_from_the_stalled_check(world: World):
    # A token that found nothing to do (a dead instance's claim still stood) has ended; the
    # job it would have taken must not wait for a restart. The periodic stalled check gives
    # it a token, counting the tokens that run jobs by the jobs they hold.
    world.backend.scripts[world.models[MUSIC].model_id] = Script(seconds=1.5)
    engine = world.engine("a", ceiling=2)
    await engine.start()
    assert engine.cluster is not None
    running = [await world.submit(engine, await world.user(f"r{i}"), prompt=f"r{i}") for i in range(2)]
    deadline = time.monotonic() + 20
    while (await engine.jobs.counts_by_status())["running"] < 2:
        assert time.monotonic() < deadline, "the first two jobs never ran"
        await asyncio.sleep(0.02)
    user = await world.user("stranded")
    stranded = Job(**{**running[0].__dict__, "id": new_job_id(), "user_id": user,
                      "chat_id": str(user), "status": JobStatus.QUEUED, "prediction_id": None})
    async with world.db.transaction() as tx:  # stored and charged; its token is lost
        await engine.jobs.insert(tx, stranded)
        await world.ledger.charge(tx, user, stranded.price, job_id=stranded.id, reason=MUSIC)
    assert await engine.jobs.tasks_pending(RUN_TASK) == 2  # the two running jobs' tokens

    await engine.cluster._requeue_stalled(int(time.time()))
    await world.until_ended([*(j.id for j in running), stranded.id], timeout=30)
    assert await world.status(stranded.id) == "delivered"
    assert Counter(j for j, _, _ in world.notifier.delivered) == Counter(
        [*(j.id for j in running), stranded.id])
