"""The adapter in-process against the fake Bot API: a local Bot API server (big files),
and the rendering fallbacks Telegram forces (long captions, text that must become a photo)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.telegram.app import TelegramAdapter
from adapters.telegram.notifier import LOCAL_UPLOAD_LIMIT
from bot.app import Services, build_services
from core.actions import Back
from core.screens import Button, Screen
from core.sessions import SessionData, Step
from core.settings import load_settings
from core.studio.replies import ChatContext, Edit
from tests.fakes.telegram import ChatUser, TelegramFake
from tests.telegram_world import Media, make_media


@dataclass
class Running:
    fake: TelegramFake
    services: Services
    adapter: TelegramAdapter
    media: Media


@contextlib.asynccontextmanager
async def running(tmp_path: Path, *, local: bool, **overrides: Any) -> AsyncIterator[Running]:
    async with TelegramFake(local=local) as fake:
        settings = load_settings(
            None, telegram_bot_token=fake.token, telegram_api_base=fake.base_url,
            telegram_api_local=local, database_url=f"sqlite:///{tmp_path / 'lokiz.db'}",
            media_dir=tmp_path / "media", generator="local", http_port=0, **overrides,
        )
        services = await build_services(settings)
        adapter = TelegramAdapter(settings, services.desk)
        adapter.mount(services.http.app)
        task = asyncio.create_task(adapter.run())
        try:
            await fake.wait_until(lambda: fake.calls_of("getUpdates"), timeout=10)
            yield Running(fake, services, adapter, make_media(tmp_path / "input"))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await adapter.close()
            await services.close()


async def test_a_local_bot_api_server_takes_files_over_20_mb(tmp_path: Path) -> None:
    async with running(tmp_path, local=True) as world:
        fake = world.fake
        assert world.adapter.notifier.upload_limit(None) == LOCAL_UPLOAD_LIMIT  # type: ignore[arg-type]
        user = ChatUser(fake, 501, "Local")
        big = tmp_path / "big.mp4"
        big.write_bytes(world.media.clip.read_bytes() + b"\0" * (21 * 1024 * 1024))
        mark = fake.mark()
        await user.send_video(big, caption="0:01")
        said = await fake.wait_for(lambda c: c.method in ("sendPhoto", "sendMessage") and c.ok,
                                   after=mark, timeout=20)
        assert fake.calls_of("getFile"), "downloaded, not refused by size"
        assert "20 MB" not in str(said.params.get("text", ""))


async def test_a_local_bot_api_server_still_caps_downloads_at_max_download_mb(tmp_path: Path) -> None:
    async with running(tmp_path, local=True, max_download_mb=1) as world:
        fake = world.fake
        user = ChatUser(fake, 503, "Capped")
        big = tmp_path / "big.mp4"
        big.write_bytes(world.media.clip.read_bytes() + b"\0" * (2 * 1024 * 1024))
        mark = fake.mark()
        await user.send_video(big, caption="0:01")
        said = await fake.wait_for(lambda c: c.method in ("sendPhoto", "sendMessage") and c.ok
                                   and not str(c.params.get("text", "")).startswith("👋"),  # welcome
                                   after=mark, timeout=20)
        assert said.method == "sendMessage"
        assert "I can take up to 1 MB" in said.params["text"]
        assert "Bots can only download" not in said.params["text"]  # that hint is the public 20 MB
        assert [c for c in fake.calls[mark:] if c.method == "getFile"] == []
        assert list((tmp_path / "media").rglob("*.mp4")) == []  # nothing kept


async def test_long_captions_and_text_that_becomes_a_photo(tmp_path: Path) -> None:
    async with running(tmp_path, local=False) as world:
        fake, renderer = world.fake, world.adapter.renderer
        user = ChatUser(fake, 502, "Render")
        await user.send_text("/start")
        await fake.wait_for("sendMessage", chat_id=502)
        ctx = ChatContext("telegram", "502", "502")
        session = await world.services.sessions.create(
            user_id=1, platform="telegram", chat_id="502", chat_kind="private", step=Step.SHEET,
            data=SessionData(),
        )
        long_text = "🎬 " + "a long template list line. " * 60
        buttons = ((Button("Back", Back(session.id)),),)
        screen = Screen(long_text, buttons, image=world.media.photo)
        mark = fake.mark()
        sent = await renderer.send(ctx, screen, reply_to=None, session_id=session.id)
        photo, words = [c for c in fake.calls[mark:] if c.method in ("sendPhoto", "sendMessage")]
        assert photo.method == "sendPhoto" and "caption" not in photo.params
        assert words.params["text"] == long_text and fake.buttons(sent) == ["Back"]
        bound = await world.services.sessions.get(session.id)
        assert bound is not None and bound.message_id == str(sent.message_id)

        # A preview edit aimed at a text message cannot become a photo: a new photo replaces it.
        mark = fake.mark()
        await renderer.edit(ctx, Edit(Screen("frame", buttons, image=world.media.photo),
                                      str(sent.message_id), new_media=True))
        replacement = next(c for c in fake.calls[mark:] if c.method == "sendPhoto" and c.ok)
        rebound = await world.services.sessions.get(session.id)
        assert rebound is not None and rebound.message_id == str(replacement.message().message_id)

        # Same words again: "message is not modified" is not an error.
        again = Screen("frame", buttons, image=world.media.photo)
        await renderer.edit(ctx, Edit(again, str(replacement.message().message_id)))
        assert fake.calls[-1].error and "not modified" in fake.calls[-1].error
