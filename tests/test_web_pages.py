"""The stored web page: revisions for live updates, edits only by the owner, old pages forgotten."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.web.render import PageRenderer, WebNotifier
from core.notify import OutputMedia
from core.screens import Screen
from core.web_pages import WebPages


def pages_on(db) -> WebPages:
    return WebPages(db)


def media_key(chat: str, path: Path) -> str:
    return f"{chat}-{path.name}"


@pytest.mark.both_stores
async def test_a_page_gets_what_changed_since_the_revision_it_saw(db):
    pages = pages_on(db)
    first = await pages.add("111", {"text": "frame"})
    await pages.add("111", {"text": "0:02"}, mine=True)
    seen = max(m["rev"] for m in await pages.since("111", 0))
    assert await pages.since("111", seen) == []
    assert await pages.change("111", first, text="started")
    changed = await pages.since("111", seen)
    assert [(m["id"], m["text"]) for m in changed] == [(first, "started")]


@pytest.mark.both_stores
async def test_one_browser_cannot_edit_or_see_anothers_page_or_media(db, tmp_path):
    pages = pages_on(db)
    message = await pages.add("111", {"text": "mine"})
    media_id = await pages.share("111", tmp_path / "clip.mp4", media_key("111", tmp_path / "clip.mp4"))
    assert not await pages.change("222", message, text="hijacked")
    assert await pages.get("222", message) is None and await pages.since("222", 0) == []
    assert await pages.media_path("222", media_id) is None
    assert await pages.media_path("111", media_id) == tmp_path / "clip.mp4"


@pytest.mark.both_stores
async def test_pages_older_than_the_media_ttl_are_forgotten(db, tmp_path):
    pages = pages_on(db)
    await pages.add("111", {"text": "old"})
    media_id = await pages.share("111", tmp_path / "clip.mp4", media_key("111", tmp_path / "clip.mp4"))
    await pages.forget(time.time() + 1)
    assert await pages.since("111", 0) == [] and await pages.media_path("111", media_id) is None


@pytest.mark.both_stores
async def test_a_result_sent_twice_shows_once(db, tmp_path):
    pages = pages_on(db)
    notifier = WebNotifier(PageRenderer(pages, None, media_key))  # type: ignore[arg-type]
    job = SimpleNamespace(id="j1", chat_id="111", status_message_id=None)
    clip = OutputMedia(path=tmp_path / "clip.mp4", kind="video")
    first = await notifier.deliver(job, clip, Screen("✨ AI hug"))  # type: ignore[arg-type]
    again = await notifier.deliver(job, clip, Screen("✨ AI hug"))  # type: ignore[arg-type]
    assert again.message_id == first.message_id
    assert [m["text"] for m in await pages.since("111", 0)] == ["✨ AI hug"]
