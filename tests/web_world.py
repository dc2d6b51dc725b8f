"""A world for web studio tests: the real bot (`python -m bot` with no platform token, in a
subprocess) serving the studio page, and headless Debian chromium driven by Playwright.

    studio = WebStudio.start(home)                 # the bot, its printed URL
    async with browser_session() as browser:       # chromium (skips when missing, fails under CI)
        page = await open_studio(browser, studio)
        ...
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.telegram_world import BotProcess, read_database

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str:
    """Debian's chromium; a test without it skips (and fails under CI, where it must be)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    why = "chromium is not installed (apt-get install chromium; .ci/run does it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        found, why = None, "playwright is not installed (pip install -e '.[dev]')"
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return found


@dataclass
class WebStudio:
    home: Path
    bot: BotProcess
    url: str = ""

    @classmethod
    def start(cls, home: Path, **env: str) -> WebStudio:
        home.mkdir(parents=True, exist_ok=True)
        settings = {
            "DATABASE_URL": f"sqlite:///{home / 'lokiz.db'}", "MEDIA_DIR": str(home / "media"),
            "HTTP_PORT": "0", "LOG_LEVEL": "INFO", **env,
        }
        studio = cls(home, BotProcess(settings, home))
        studio.bot.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and studio.bot.alive:
            found = re.search(r"LOKIZ web studio: (http://\S+)", studio.bot.log())
            if found:
                studio.url = found.group(1)
                return studio
            time.sleep(0.1)
        raise AssertionError(f"the web studio did not start:\n{studio.bot.log()[-3000:]}")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return read_database(self.home / "lokiz.db", sql, params)

    def web_users(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM users WHERE platform = 'web' ORDER BY id")


@contextlib.asynccontextmanager
async def browser_session() -> AsyncIterator[Any]:
    executable = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_studio(browser: Any, studio: WebStudio, *, width: int = 900, locale: str = "en-US") -> Any:
    """A new browser (its own cookies: a new person) on the studio page, welcomed."""
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    page = await context.new_page()
    await page.goto(studio.url)
    await page.locator("#balance").filter(has_text=re.compile(r"\d")).wait_for()
    return page


async def balance(page: Any) -> int:
    return int(await page.locator("#balance").get_attribute("data-value"))


async def send_video(page: Any, video: Path, at: str = "") -> None:
    await page.set_input_files("#file", str(video))
    await page.fill("#text", at)
    await page.click("#send")


async def press(page: Any, label: str | re.Pattern[str]) -> None:
    """Press the button with this label on the latest message that shows one."""
    await page.locator("article").get_by_role("button", name=label).last.click()


async def snap(page: Any, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path))  # what the person sees
    return path
