"""The web studio in a real browser: `python -m bot` with no token, headless chromium.

Screenshots of each step land in the test's temp dir (`screenshots/`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from adapters.web.identity import Keys
from adapters.web.render import PageRenderer, WebNotifier
from core.i18n import t
from core.screens import Screen
from core.storage import open_database
from core.web_pages import WebPages
from tests.media_factory import make_av_video, make_noisy_video
from tests.telegram_world import TelegramWorld, make_media
from tests.web_world import (
    WebStudio,
    balance,
    browser_session,
    open_studio,
    press,
    send_video,
    snap,
)

LATEST_VIDEO_PLAYS = """() => { const v = [...document.querySelectorAll('article video')].pop();
    return !!v && v.readyState >= 2 && v.duration > 0; }"""


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStudio]:
    world = WebStudio.start(tmp_path_factory.mktemp("web-studio"))
    yield world
    asyncio.run(world.bot.stop())


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_av_video(tmp_path_factory.mktemp("web-media") / "clip.mp4", seconds=5.0)


def user_of(studio: WebStudio, cookie_value: str) -> dict[str, object]:
    rows = studio.query("SELECT * FROM users WHERE platform = 'web' AND platform_user_id = ?",
                        (cookie_value.split(".")[0],))
    return dict(rows[0])


async def visitor_id(page) -> str:
    cookies = await page.context.cookies()
    return next(c["value"] for c in cookies if c["name"] == "lokiz_web").split(".")[0]


async def open_frame(page, clip: Path, at: str = "0:02.5"):
    await send_video(page, clip, at)
    frame = page.locator("article.bot", has_text=f"Frame at {at} ").last
    await frame.locator("img").wait_for()
    return frame


async def test_a_newcomer_makes_a_template_clip_in_the_browser(studio, clip, tmp_path):
    shots = tmp_path / "screenshots"
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        problems: list[str] = []  # console errors, e.g. a Content-Security-Policy refusal
        page.on("console", lambda message: message.type == "error" and problems.append(message.text))
        await page.get_by_text("Welcome to LOKIZ").wait_for()
        start = await balance(page)
        await page.evaluate("window.sameTab = true")
        await snap(page, shots, "1-welcome")

        frame = await open_frame(page, clip, "0:02.5")
        assert await frame.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
        await snap(page, shots, "2-frame")

        await press(page, "🎬 Template")
        await press(page, "AI hug")
        await snap(page, shots, "3-options")
        await press(page, "Next ➡")
        await press(page, re.compile(r"Confirm \(20 credits\)"))
        status = page.locator("article", has_text=re.compile(r"AI hug: (queued|generating)"))
        await status.wait_for()
        status_id = await status.get_attribute("id")
        await snap(page, shots, "4-status")

        done = page.locator("article", has_text="AI hug: sent below")
        await done.wait_for(timeout=120_000)
        assert await done.get_attribute("id") == status_id  # the same status message, edited live
        await page.wait_for_function(LATEST_VIDEO_PLAYS, timeout=30_000)
        result = page.locator("article", has=page.locator("video")).last
        for label in ("Remix", "Again", "Add music", "👍"):
            assert await result.get_by_role("button", name=re.compile(re.escape(label))).count() == 1
        assert await page.evaluate("window.sameTab") is True  # no reload on the way
        await page.click("[data-account=feed]")  # the browser's own chat: its feed is this clip
        await page.get_by_text(re.compile(r"Top clips of the last 7 days · page 1/1")).wait_for()
        posted = page.locator("article", has_text=re.compile(r"1\. .* · post \d+"))
        await posted.wait_for()
        assert await posted.locator("video").count() == 1
        assert await posted.get_by_role("button", name="🌀 Remix").count() == 1
        price = studio.query("SELECT price FROM jobs ORDER BY created_at DESC LIMIT 1")[0]["price"]
        assert price == 20
        await page.wait_for_function(
            f"() => document.querySelector('#balance').dataset.value === '{start - price}'")
        await snap(page, shots, "5-result")

        assert problems == []
        await page.set_viewport_size({"width": 390, "height": 844})
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await snap(page, shots, "6-phone-390")


async def test_another_browser_cannot_fetch_my_media_or_press_my_buttons(studio, clip):
    async with browser_session() as browser:
        alice = await open_studio(browser, studio)
        frame = await open_frame(alice, clip, "0:01")
        picture = studio.url.rstrip("/") + await frame.locator("img").get_attribute("src")
        message_id = (await frame.get_attribute("id")).removeprefix("m")
        session = studio.query("SELECT id FROM sessions ORDER BY created_at DESC LIMIT 1")[0]["id"]

        mine = await alice.request.get(picture, headers={"Range": "bytes=0-99"})
        assert mine.status == 206 and len(await mine.body()) == 100
        assert mine.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in mine.headers["content-security-policy"]

        bob = await open_studio(browser, studio)
        assert (await bob.request.get(picture)).status == 404
        pressed = await bob.evaluate(
            """([message, data]) => fetch('/press', {method: 'POST', body: JSON.stringify({message, data}),
                headers: {'Content-Type': 'application/json'}}).then(r => r.status)""",
            [message_id, f"lz:st.tpl:{session}"],
        )
        assert pressed == 403
        assert studio.query("SELECT step FROM sessions WHERE id = ?", (session,))[0]["step"] == "frame"
        assert await alice.locator(f"#m{message_id}").get_by_role("button", name="🎬 Template").count() == 1


async def test_a_post_from_another_site_is_refused(studio):
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        before = studio.query("SELECT COUNT(*) AS n FROM web_messages")[0]["n"]
        for origin in ("http://evil.example", None):
            headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
            refused = await page.request.post(studio.url + "say", data=json.dumps({"text": "0:01"}),
                                              headers=headers)
            assert refused.status == 403
            assert (await refused.json())["alerts"] == [t("en", "web.cross_origin")]
        assert studio.query("SELECT COUNT(*) AS n FROM web_messages")[0]["n"] == before


async def test_a_corrupt_upload_gets_the_error_in_korean_and_moves_no_credits(studio, tmp_path):
    noise = tmp_path / "broken.mp4"
    noise.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 200)
    async with browser_session() as browser:
        page = await open_studio(browser, studio, locale="ko-KR")
        start = await balance(page)
        await send_video(page, noise, "0:01")
        await page.get_by_text(t("ko", "error.corrupt_video")).wait_for()
        await snap(page, tmp_path / "screenshots", "corrupt-upload-ko")
        user = user_of(studio, await visitor_id(page))
        entries = studio.query("SELECT kind FROM ledger WHERE user_id = ?", (user["id"],))
        assert [e["kind"] for e in entries] == ["starter"] and user["balance"] == start


async def test_a_clip_finished_while_the_tab_was_closed_is_there_on_the_next_visit(studio, clip):
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        await open_frame(page, clip, "0:03")
        await press(page, "🎬 Template")
        await press(page, "AI hug")
        await press(page, "Next ➡")
        await press(page, re.compile(r"Confirm \("))
        await page.locator("article", has_text="AI hug: queued").or_(
            page.locator("article", has_text="AI hug: generating")).first.wait_for()
        user = user_of(studio, await visitor_id(page))
        await page.close()

        for _ in range(600):
            rows = studio.query("SELECT status FROM jobs WHERE user_id = ?", (user["id"],))
            if rows and rows[-1]["status"] == "delivered":
                break
            await asyncio.sleep(0.2)
        later = await page.context.new_page()
        await later.goto(studio.url)
        await later.locator("article", has_text="Frame at 0:03 ").locator("img").wait_for()
        await later.wait_for_function(LATEST_VIDEO_PLAYS, timeout=30_000)


async def test_status_written_by_another_instance_reaches_the_open_page(studio):
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        user = user_of(studio, await visitor_id(page))
        # Another instance: its own database connection and notifier, nothing shared in memory.
        db = await open_database(f"sqlite:///{studio.home / 'lokiz.db'}")
        try:
            secret = (studio.home / "web_secret.key").read_text().strip().encode()
            pages = WebPages(db)
            media_key = Keys(secret, access_code=None, lifetime=3600).media_id
            notifier = WebNotifier(PageRenderer(pages, None, media_key))  # type: ignore[arg-type]
            job = SimpleNamespace(chat_id=user["platform_user_id"], status_message_id=None)
            first = await notifier.show_status(job, Screen("⏳ Elsewhere: queued"))  # type: ignore[arg-type]
            await page.get_by_text("⏳ Elsewhere: queued").wait_for()
            job.status_message_id = first
            await notifier.show_status(job, Screen("🎬 Elsewhere: generating"))  # type: ignore[arg-type]
            await page.locator(f"#m{first}", has_text="🎬 Elsewhere: generating").wait_for()
        finally:
            await db.close()


async def test_access_code_and_upload_limit(tmp_path, clip):
    gated = WebStudio.start(tmp_path / "gated", WEB_ACCESS_CODE="open sesame", WEB_MAX_UPLOAD_MB="1")
    try:
        async with browser_session() as browser:
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(gated.url)
            assert await page.locator("#feed").count() == 0
            await page.fill("input[name=code]", "guess")
            await page.click("form.access button")
            await page.get_by_text(t("en", "web.access_wrong")).wait_for()
            assert gated.web_users() == []
            await page.fill("input[name=code]", "open sesame")
            await page.click("form.access button")
            await page.get_by_text("Welcome to LOKIZ").wait_for()

            big = tmp_path / "big.mp4"
            big.write_bytes(clip.read_bytes() * (2 * 1024 * 1024 // clip.stat().st_size + 1))
            await send_video(page, big, "0:01")
            await page.locator("#toast", has_text=t("en", "web.too_large", limit_mb=1)).wait_for()
            sent = await page.request.post(gated.url + "upload?at=0:01", data=big.read_bytes(),
                                           headers={"Origin": gated.url.rstrip("/"), "Content-Type": "video/mp4"})
            assert sent.status == 413
            await page.locator("article", has_text=t("en", "web.too_large", limit_mb=1)).wait_for()
            assert gated.query("SELECT COUNT(*) AS n FROM sessions")[0]["n"] == 0
    finally:
        await gated.bot.stop()


async def test_contact_sheet_music_form_glitch_clip_jobs_and_the_language_switch(studio, clip, tmp_path):
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        await send_video(page, clip)  # no time: the contact sheet, a button per tile
        sheet = page.locator("article", has_text=t("en", "studio.sheet"))
        await sheet.locator("img").wait_for()
        await snap(page, tmp_path / "screenshots", "contact-sheet")
        await sheet.get_by_role("button", name=re.compile(r"^0:0[1-3]")).first.click()
        await page.locator("article", has_text=re.compile(r"Frame at 0:0[1-3]")).locator("img").wait_for()

        await open_frame(page, clip, "0:01")
        await press(page, "🎵 Music")
        await press(page, "✍️ Type a prompt")
        form = page.get_by_placeholder(t("en", "studio.prompt_placeholder"))
        await form.fill("rain on a tin roof")
        await form.press("Enter")
        await page.locator("article", has_text="“rain on a tin roof”").get_by_role(
            "button", name=re.compile(r"Confirm \(5 credits\)")).wait_for()

        await open_frame(page, clip, "0:02")
        await press(page, "🌀 Glitch")
        await page.get_by_text(t("en", "studio.ask_clip", seconds=10)).wait_for()
        await send_video(page, clip)
        await page.locator("article").get_by_role("button", name="🕺 Animate").wait_for()
        await snap(page, tmp_path / "screenshots", "glitch-modes")

        await page.click("[data-account=jobs]")
        await page.get_by_text(t("en", "account.no_jobs")).wait_for()
        await page.click("[data-lang=ko]")
        await page.get_by_text(t("ko", "account.language_set")).wait_for()
        await page.locator("[data-account=balance]", has_text="잔액").wait_for()
        await page.locator("#balance", has_text="크레딧").wait_for()
        await snap(page, tmp_path / "screenshots", "korean")


async def test_an_upload_far_over_a_webhook_body_streams_in_with_progress_shown(studio, tmp_path):
    big = make_noisy_video(tmp_path / "noisy.mp4")
    assert big.stat().st_size > 4 * 1024 * 1024  # the HTTP server's webhook routes take 1-2 MB
    async with browser_session() as browser:
        page = await open_studio(browser, studio)
        await page.evaluate("""() => { window.progress = [];
            const bar = document.getElementById('progress');
            new MutationObserver(() => window.progress.push([bar.hidden, bar.value]))
                .observe(bar, {attributes: true}); }""")
        await open_frame(page, big, "0:01")
        shown = await page.evaluate("window.progress")
        assert any(not hidden and value > 0 for hidden, value in shown), shown


async def test_operators_turn_the_web_studio_on_next_to_telegram(tmp_path):
    world = await TelegramWorld.start(tmp_path, make_media(tmp_path / "media-in"), replicate=False,
                                      extra_env={"WEB_STUDIO": "true"})
    try:
        found = re.search(r"LOKIZ web studio: (http://\S+)", world.bot.log())
        assert found, world.bot.log()[-2000:]
        async with aiohttp.ClientSession() as http, http.get(found.group(1)) as page:
            assert page.status == 200 and '<main id="feed"' in await page.text()
        alice = world.user("Alice")
        assert "Welcome" in (await world.say(alice, "/start")).text  # Telegram still answers
    finally:
        await world.stop()
