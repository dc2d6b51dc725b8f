"""/healthz and /metrics as an operator's monitoring sees them."""

from __future__ import annotations

import asyncio

import aiohttp

from bot.app import build_services
from core.catalogue import MUSIC, JobRequest
from core.settings import load_settings
from tests.fakes.backend import Script, ScriptedBackend
from tests.fakes.notifier import RecordingNotifier


async def test_healthz_and_metrics(tmp_path, av_video):
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'h.db'}", media_dir=tmp_path / "m",
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
