"""The hourly clean-up keeps the disk and the database from growing without end."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.app import build_services, clean_up
from core.sessions import SessionData, SessionStore, Step
from core.settings import load_settings


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


async def test_cleanup_removes_old_files_their_empty_folders_and_expired_sessions(tmp_path: Path) -> None:
    media_dir = tmp_path / "media"
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'c.db'}", media_dir=media_dir,
                             media_ttl_hours=1, http_port=0)
    services = await build_services(settings)
    try:
        user, _ = await services.ledger.ensure_user("telegram", "1")
        live = await services.sessions.create(user_id=user.id, platform="telegram", chat_id="1",
                                              chat_kind="private", step=Step.SHEET, data=SessionData())
        expired = await SessionStore(services.db, ttl=-60).create(
            user_id=user.id, platform="telegram", chat_id="1", chat_kind="private", step=Step.SHEET,
            data=SessionData())

        old_input = services.media.path("in", "ab", "ab12.mp4")
        old_frame = services.media.session_dir(expired.id) / "frame.jpg"
        new_frame = services.media.session_dir(live.id) / "frame.jpg"
        for path in (old_input, old_frame, new_frame):
            path.write_bytes(b"x")
        for path in (old_input, old_frame):
            _age(path, 2)
        (media_dir / "outputs").mkdir()

        await clean_up(services)

        assert not old_input.exists() and not old_frame.exists() and new_frame.exists()
        assert not (media_dir / "in" / "ab").exists()
        assert not (media_dir / "sessions" / expired.id).exists()
        # Top folders stay: some writers make them only at start-up.
        assert (media_dir / "in").is_dir() and (media_dir / "outputs").is_dir()
        assert await services.sessions.get(expired.id) is None
        assert await services.sessions.get(live.id) is not None
    finally:
        await services.close()
