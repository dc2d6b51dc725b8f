"""bench/jobs.py in miniature: every job is delivered once, and webhooks make polling unnecessary."""

from __future__ import annotations

from bench.jobs import BenchConfig, run_bench


async def test_the_jobs_bench_delivers_every_job_and_never_polls_a_webhooked_one():
    config = BenchConfig(jobs=20, min_seconds=0.2, max_seconds=0.5, jobs_per_user=5,
                         phase_timeout=30)

    results = await run_bench(config)

    for mode in ("polling", "webhook"):
        phase = results[mode]
        assert phase.all_delivered, (mode, phase.by_status, phase.delivered)
        assert phase.credits_consistent, (mode, phase.charged, phase.refunded)
        assert phase.requests["create"] == 20 and phase.requests["upload"] == 20
        assert phase.requests["download"] == 20
        assert phase.rss_before > 0 and phase.lags
    assert results["polling"].requests["get"] >= 20
    webhook = results["webhook"]
    assert webhook.webhooks_arrived == 20
    assert webhook.polling_gets_after_webhook == 0
    assert webhook.requests.get("get", 0) == 0
