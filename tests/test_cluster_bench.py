"""bench/cluster.py in miniature (the same code): two `python -m bot run` instances on
PostgreSQL, Redis and an S3 bucket, behind the round-robin balancer, in Telegram webhook
mode with the fake Replicate's webhooks, each also running one shard of the Discord bot
against the fake gateway; 50 paid jobs (15 of them from Discord members) are confirmed
while chat users talk on both platforms, one instance (and so one shard) is SIGKILLed with
jobs in flight and restarted.

Only counts are asserted, never times: no job lost, none charged twice, each delivered or
refunded and never both, every balance equal to its ledger, on each platform; no Discord
duplicate, and at most as many Telegram duplicates as sends the killed instance had in flight.
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
    assert CONFIG.discord_jobs > 0 and CONFIG.discord_users > 0
    assert report.prepared == report.confirmed == CONFIG.jobs - CONFIG.discord_jobs
    assert report.discord_prepared == report.discord_confirmed == CONFIG.discord_jobs
    assert report.confirms_without_job == 0 and report.jobs_per_chat_over_one == 0
    assert report.submitted == CONFIG.jobs
    assert report.lost == 0, (report.statuses, report.sends, report.refunds)
    assert report.unfinished == 0, report.statuses
    assert report.uncharged == 0 and report.double_charges == 0, (report.charges, report.refunds)
    assert report.both == 0
    assert report.delivered + report.refunded == report.submitted
    assert report.broken_balances == 0
    telegram, discord = report.counts("telegram"), report.counts("discord")
    assert telegram.submitted == CONFIG.jobs - CONFIG.discord_jobs
    assert discord.submitted == CONFIG.discord_jobs
    for platform in (telegram, discord):
        assert platform.lost == 0 and platform.both == 0, platform
        assert platform.delivered + platform.refunded == platform.submitted, platform
    assert telegram.duplicated <= kill.sends_in_flight, (report.sends, kill)
    assert discord.duplicated == 0, {j: n for j, n in report.sends.items() if n > 1}
    assert report.discord_unattributed == 0
    assert report.discord_unmentioned == 0, "whichever instance delivers, the owner is notified"
    assert len(kill.resumed_after) == kill.held, "every job the dead instance held was taken up"
    assert report.unanswered == 0 and report.chat_sent > 0
    assert kill.shard is not None and kill.discord_back_at > kill.at
    assert any(s.platform == "discord" and s.latency is not None for s in report.samples)
    # Interactions can only fail where the killed shard could not take them.
    assert report.discord_failed()[1] == 0, report.discord_failed()


def test_discord_deliveries_are_counted_per_message_so_a_second_one_shows() -> None:
    """The bench counts Discord deliveries from the messages the bot made (a Counter): a job
    posted twice is one duplicate, even when the second copy was deleted since; another
    job's message and a message without audio count for nobody else."""
    from bench.cluster import BenchDiscord, ClusterReport, count_discord_deliveries, discord_world
    from tests.fakes.discord import UploadedFile

    fake = BenchDiscord(shard_count=2)
    channel = discord_world(fake, 2)[0]

    def post(name: str, kind: str = "audio/wav") -> dict[str, object]:
        files = [UploadedFile("files[0]", name, kind, b"RIFF....WAVE")]
        payload = {"content": "done", "attachments": [{"id": 0, "filename": name}]}
        return fake._create_message(channel, fake.bot_user, payload, files)

    post("lokiz-j1.wav")
    second = post("lokiz-j1.wav")
    fake.deleted_messages[int(second["id"])] = fake.messages.pop(int(second["id"]))
    post("lokiz-j2.wav")
    post("frame.jpg", "image/jpeg")
    report = ClusterReport(CONFIG)
    jobs: dict[str, dict[str, object]] = {
        "j1": {"platform": "discord"}, "j2": {"platform": "discord"},
        "j3": {"platform": "discord"}, "t1": {"platform": "telegram"}}
    report.platform_of = {j: str(row["platform"]) for j, row in jobs.items()}
    count_discord_deliveries(fake, jobs, report)
    assert dict(report.sends) == {"j1": 2, "j2": 1, "j3": 0}
    discord = report.counts("discord")
    assert (discord.delivered, discord.duplicated, discord.lost) == (2, 1, 1)
    assert report.discord_unattributed == 0
