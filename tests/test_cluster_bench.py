"""bench/cluster.py in miniature (the same code): two `python -m bot run` instances on
PostgreSQL, Redis and an S3 bucket, behind the round-robin balancer, in Telegram webhook
mode with the fake Replicate's webhooks; 50 paid jobs are confirmed while chat users talk,
one instance is SIGKILLed with jobs in flight and restarted.

Only counts are asserted, never times: no job lost, none charged twice, each delivered or
refunded and never both, every balance equal to its ledger, and at most as many Telegram
duplicates as sends the killed instance had in flight.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from urllib.parse import quote

import psycopg

from bench.cluster import ClusterConfig, Infra, S3Access, print_report, run_cluster
from tests.media_factory import make_av_video
from tests.s3_server import S3Server, s3_server  # noqa: F401  (the fixture)

log = logging.getLogger(__name__)

CONFIG = ClusterConfig(
    instances=2, users=100, rate=5.0, jobs=50, seconds=30.0, kill_at=0.4, restart_after=2.0,
    confirm_share=0.3, model_min=6.0, model_max=14.0, worker_concurrency=100,
    update_lease=10.0, prep_concurrency=6, settle_seconds=240.0, seed=7,
)


async def test_a_sigkilled_instance_loses_no_job_and_charges_none_twice(
    postgres_database: str, redis_url: str, redis_prefix: str,
    s3_server: S3Server, tmp_path: Path,  # noqa: F811
) -> None:
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        infra = Infra(
            database_url=f"{postgres_database}?options={quote(f'-csearch_path={schema}')}",
            redis_url=redis_url, redis_prefix=redis_prefix,
            s3=S3Access(s3_server.endpoint, s3_server.access_key, s3_server.secret_key,
                        await s3_server.bucket()),
        )
        clip = make_av_video(tmp_path / "clip.mp4", seconds=5.0)
        report = await run_cluster(CONFIG, infra, tmp_path / "run", clip, progress=log.warning)
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    print_report(report, CONFIG)  # shown with -s, and on a failure
    kill = report.kill
    assert kill is not None and kill.in_flight > 0 and kill.held > 0, kill  # a kill that mattered
    assert report.problems == []
    assert report.prepared == report.confirmed == CONFIG.jobs
    assert report.confirms_without_job == 0 and report.jobs_per_chat_over_one == 0
    assert report.submitted == CONFIG.jobs
    assert report.lost == 0, (report.statuses, report.sends, report.refunds)
    assert report.unfinished == 0, report.statuses
    assert report.uncharged == 0 and report.double_charges == 0, (report.charges, report.refunds)
    assert report.both == 0
    assert report.delivered + report.refunded == report.submitted
    assert report.broken_balances == 0
    assert report.duplicated <= kill.sends_in_flight, (report.sends, kill)
    assert len(kill.resumed_after) == kill.held, "every job the dead instance held was taken up"
    assert report.unanswered == 0 and report.chat_sent > 0
