"""The PostgreSQL job queue under load, in one process: two engines (two instances) with
their procrastinate workers share one database; N jobs from N/2 users go through a
scripted backend under a deployment-wide ceiling.

    python -m bench.job_queue [--jobs 400] [--ceiling 40] [--concurrency 150] [--seconds 0.3]

Prints the wall time, jobs/s, the peak of jobs generating at once (must stay at or under
the ceiling), how the jobs split between the instances, and the counts that must hold:
delivered + refunded = submitted, one prediction and one delivery per job. Needs a
PostgreSQL server (LOKIZ_TEST_POSTGRES, default postgresql://postgres@127.0.0.1:5432/postgres);
it creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from core.catalogue import MUSIC, JobRequest, TemplateCatalogue, build_models
from core.credits import CreditLedger
from core.engine import JobEngine
from core.jobs import JobStore
from core.settings import load_settings
from core.storage.postgres import PostgresDatabase
from core.users import UserDirectory
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier

SERVER = os.environ.get("LOKIZ_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


async def run(jobs: int, ceiling: int, concurrency: int, seconds: float, url: str, home: Path,
              in_process: bool = False) -> None:
    db = await PostgresDatabase.open(url, max_size=20)
    await db.migrate()
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=1000)
    output = home / "out.wav"
    output.write_bytes(b"RIFF bench")
    backend = ScriptedBackend(output_file=output)
    models = build_models(load_settings(None))
    backend.scripts[models[MUSIC].model_id] = Script(seconds=seconds)
    notifier = RecordingNotifier()
    engines = []
    for name in ("a", "b"):
        engine = JobEngine(
            jobs=JobStore(db, ledger), ledger=ledger, models=models, backend=backend,
            notifiers={"telegram": notifier}, media_dir=home / name,
            templates=TemplateCatalogue.load(), max_concurrent=ceiling, max_active_per_user=2,
            timeout=120, status_interval=0.5, poll_initial=0.05, poll_max=0.2, progress_every=60,
            instance_id=name,
        )
        if not in_process:
            engine.use_cluster(db, concurrency=concurrency, drain_seconds=5)
        engines.append(engine)
        if in_process:  # the comparison: one engine, its in-process scheduler
            break
        await engine.start(worker=False)
    ids = []
    began = time.monotonic()
    for i in range(jobs):
        user, _ = await ledger.ensure_user("telegram", str(10_000 + i // 2))
        job = await engines[i % len(engines)].submit(user_id=user.id, platform="telegram", chat_id=str(i),
                                          language="en", request=JobRequest(MUSIC, prompt=f"s{i}"))
        ids.append(job.id)
    submitted = time.monotonic() - began
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    for engine in engines:
        if in_process:
            await engine.start()
        else:
            assert engine.cluster is not None
            await engine.cluster.start_worker()
    peak = 0
    by_instance: Counter[str] = Counter()
    seen: set[str] = set()
    store = JobStore(db, ledger)
    while True:
        counts = await store.counts_by_status()
        peak = max(peak, counts["running"])
        for engine in engines:
            for job_id in list(engine._steps):
                if job_id not in seen:
                    seen.add(job_id)
                    by_instance[engine.instance_id] += 1
        if counts["delivered"] + counts["failed"] + counts["canceled"] + counts["timed_out"] >= jobs:
            break
        await asyncio.sleep(0.05)
    took = time.monotonic() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    counts = await store.counts_by_status()
    deliveries = Counter(job_id for job_id, _, _ in notifier.delivered)
    mode = "one engine, in-process scheduler" if in_process else "two instances on procrastinate"
    print(f"{mode}: jobs {jobs}, ceiling {ceiling}, worker concurrency {concurrency}, "
          f"generation {seconds}s")
    print(f"submit (job + charge + queue entry, one transaction each): {submitted / jobs * 1000:.2f} ms/job")
    print(f"all ended in {took:.1f}s: {jobs / took:.1f} jobs/s; ideal at the ceiling "
          f"{jobs * seconds / ceiling:.1f}s (ratio {took / (jobs * seconds / ceiling):.2f})")
    print(f"peak generating at once: {peak} (ceiling {ceiling})")
    print(f"steps per instance: {dict(by_instance)}")
    print(f"CPU of this process while running: {cpu:.1f}s ({cpu / jobs * 1000:.1f} ms/job)")
    print(f"delivered {counts['delivered']}, refunded {counts['failed'] + counts['canceled'] + counts['timed_out']}, "
          f"duplicated deliveries {sum(n - 1 for n in deliveries.values() if n > 1)}, "
          f"predictions {len(backend.creates)} for {jobs} jobs")
    assert peak <= ceiling
    assert counts["delivered"] == jobs and len(deliveries) == jobs and max(deliveries.values()) == 1
    assert sorted(backend.creates) == sorted(ids)
    for engine in engines:
        await engine.stop()
    await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--ceiling", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--in-process", action="store_true",
                        help="compare: one engine with the in-process scheduler (same database)")
    args = parser.parse_args()
    name = f"lokiz_bench_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(SERVER)._replace(path=f"/{name}"))
    try:
        with tempfile.TemporaryDirectory() as home:
            asyncio.run(run(args.jobs, args.ceiling, args.concurrency, args.seconds, url,
                            Path(home), args.in_process))
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
