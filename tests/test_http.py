"""/healthz and /metrics as an operator's monitoring sees them."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.app import build_services
from core.backends.replicate import ReplicateBackend
from core.catalogue import MUSIC, JobRequest
from core.http import REPLICATE_WEBHOOK_PATH, HttpServer
from core.metrics import Histogram
from core.settings import load_settings
from core.webhooks import sign_webhook
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier


@pytest.mark.both_stores
async def test_healthz_and_metrics(tmp_path, av_video, database_url):
    settings = load_settings(None, database_url=database_url, media_dir=tmp_path / "m",
                             http_port=0, starter_credits=100)
    services = await build_services(settings)
    backend = ScriptedBackend(output_file=av_video)
    services.engine.backend = backend
    notifier = RecordingNotifier()
    services.engine.notifiers["telegram"] = notifier
    base = None
    try:
        async with aiohttp.ClientSession() as http:
            await services.http.start()
            base = f"http://127.0.0.1:{services.http.bound_port}"
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 503  # the engine is not running yet
            await services.engine.start()
            async with http.get(f"{base}/healthz") as response:
                body = await response.json()
                assert response.status == 200 and body["database"] == "ok" and body["engine"] == "ok"
            user, _ = await services.ledger.ensure_user("telegram", "1")
            model = services.engine.models[MUSIC].model_id
            backend.scripts[model] = Script(status="failed", error="boom")
            await services.engine.submit(user_id=user.id, platform="telegram", chat_id="1", language="en",
                                         request=JobRequest(MUSIC, prompt="a"))
            for _ in range(200):
                async with http.get(f"{base}/metrics") as response:
                    text = await response.text()
                if 'lokiz_jobs{state="failed"} 1' in text:
                    break
                await asyncio.sleep(0.02)
            assert response.content_type == "text/plain"
            assert 'lokiz_jobs{state="failed"} 1' in text
            assert "lokiz_credits_charged_total 5" in text and "lokiz_credits_refunded_total 5" in text
            assert "lokiz_queue_depth 0" in text
            async with http.post(f"{base}/webhooks/replicate", data=b"{}") as response:
                assert response.status == 404  # no webhooks without PUBLIC_URL
    finally:
        await services.close()


SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, **limits: float) -> AsyncIterator[HttpServer]:
    """An HTTP server with the bot's database and engine, verifying webhooks with SECRET."""
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'h.db'}",
                             media_dir=tmp_path / "m", http_port=0)
    services = await build_services(settings)
    webhooks = ReplicateBackend("r8_unused", "http://127.0.0.1:9", webhook_secret=SECRET)
    server = HttpServer(db=services.db, engine=services.engine, jobs=services.jobs,
                        host="127.0.0.1", port=0, webhooks=webhooks, **limits)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        await webhooks.close()
        await services.close()


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before it closes the connection (generous bound)."""
    return await asyncio.wait_for(reader.read(), timeout=60)


async def test_half_sent_requests_and_idle_connections_are_closed(tmp_path):
    async with _server(tmp_path, body_timeout=0.5, keepalive_timeout=0.5) as server:
        half_sent, idle = [], []
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            writer.write(b"POST /webhooks/replicate HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"id\": ")
            half_sent.append((reader, writer))
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            idle.append((reader, writer))
        await asyncio.gather(*(w.drain() for _, w in half_sent + idle))
        answers = await asyncio.gather(*(_until_closed(r) for r, _ in half_sent + idle))
        for _, writer in half_sent + idle:
            writer.close()
    assert [a.split(b"\r\n", 1)[0] for a in answers[:20]] == [b"HTTP/1.1 408 Request Timeout"] * 20
    assert all(a.startswith(b"HTTP/1.1 ") for a in answers[20:])  # answered, then closed


async def test_a_body_over_the_routes_limit_is_refused(tmp_path):
    async with _server(tmp_path) as server, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{server.bound_port}"
        async with http.post(f"{url}{REPLICATE_WEBHOOK_PATH}", data=b"x" * (3 * 1024 * 1024)) as response:
            assert response.status == 413
        async with http.post(f"{url}/anything-else", data=b"x" * (2 * 1024 * 1024)) as response:
            assert response.status == 413


@pytest.mark.parametrize("timestamp", ["١٧٠٠٠٠٠٠٠٠", "²", "1700000000²"])
async def test_a_webhook_timestamp_in_other_digits_gets_401_not_an_error(tmp_path, caplog, timestamp):
    body = b'{"id": "p1", "status": "succeeded", "output": null}'
    signature = sign_webhook("msg_1", timestamp, body, SECRET)
    request = (
        f"POST {REPLICATE_WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"webhook-id: msg_1\r\nwebhook-timestamp: {timestamp}\r\nwebhook-signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    async with _server(tmp_path) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(request)
        answer = await _until_closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
async def scrape(base: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(
        f"{base}/metrics", headers=headers or {}, timeout=aiohttp.ClientTimeout(total=10)
    ) as response:
        return response.status, await response.text()


async def test_metrics_asks_for_the_bearer_token_when_one_is_set(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'h.db'}",
                             media_dir=tmp_path / "m", http_port=0, metrics_token="s3cret-scrape")
    services = await build_services(settings)
    try:
        await services.http.start()
        base = f"http://127.0.0.1:{services.http.bound_port}"
        assert (await scrape(base))[0] == 401
        assert (await scrape(base, {"Authorization": "Bearer wrong"}))[0] == 401
        status, text = await scrape(base, {"Authorization": "Bearer s3cret-scrape"})
        assert status == 200 and "lokiz_queue_depth" in text
    finally:
        await services.close()


async def test_metrics_answer_while_another_process_holds_the_write_lock(tmp_path):
    path = tmp_path / "h.db"
    settings = load_settings(None, database_url=f"sqlite:///{path}", media_dir=tmp_path / "m",
                             http_port=0)
    services = await build_services(settings)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        await services.http.start()
        base = f"http://127.0.0.1:{services.http.bound_port}"
        other.execute("BEGIN IMMEDIATE")  # e.g. a CLI grant in the middle of its write
        other.execute("UPDATE users SET seen_at = 0")
        status, text = await scrape(base)
        assert status == 200 and 'lokiz_jobs{state="queued"} 0' in text
    finally:
        other.execute("ROLLBACK")
        other.close()
        await services.close()


async def test_job_durations_are_kept_in_fixed_buckets(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'h.db'}",
                             media_dir=tmp_path / "m", http_port=0)
    services = await build_services(settings)
    try:
        stats = services.engine.stats
        for seconds in [3.0] * 5000 + [20.0] * 3 + [1000.0]:
            stats.durations.setdefault("owner/model", Histogram()).observe(seconds)
        histogram = stats.durations["owner/model"]
        assert len(histogram.counts) == len(histogram.bounds)  # no per-job list
        await services.http.start()
        _, text = await scrape(f"http://127.0.0.1:{services.http.bound_port}")
        assert 'lokiz_job_duration_seconds_bucket{model="owner/model",le="5"} 5000' in text
        assert 'lokiz_job_duration_seconds_bucket{model="owner/model",le="30"} 5003' in text
        assert 'lokiz_job_duration_seconds_bucket{model="owner/model",le="900"} 5003' in text
        assert 'lokiz_job_duration_seconds_bucket{model="owner/model",le="+Inf"} 5004' in text
        assert 'lokiz_job_duration_seconds_count{model="owner/model"} 5004' in text
        assert 'lokiz_job_duration_seconds_sum{model="owner/model"} 16060.000' in text
    finally:
        await services.close()


async def test_readyz_asks_the_database_and_every_registered_check_and_says_draining(tmp_path):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'r.db'}",
                             media_dir=tmp_path / "m", http_port=0)
    services = await build_services(settings)
    redis_up = True

    async def redis() -> bool:
        return redis_up

    async def media() -> bool:
        raise ConnectionRefusedError("no route")

    try:
        await services.http.start()
        base = f"http://127.0.0.1:{services.http.bound_port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200
                assert await response.json() == {"status": "ok", "database": "ok"}
            services.http.add_ready_check("redis", redis)
            redis_up = False
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["redis"] == "down"
            redis_up = True
            services.http.add_ready_check("media", media)
            async with http.get(f"{base}/readyz") as response:
                body = await response.json()
                assert response.status == 503 and body["media"] == "down: ConnectionRefusedError"
            del services.http.ready_checks["media"]
            services.http.draining = True
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert await response.json() == {"status": "draining", "database": "ok", "redis": "ok"}
    finally:
        await services.close()
