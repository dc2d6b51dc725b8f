"""A world for Telegram end-to-end tests: the real bot (`python -m bot` in a subprocess,
configured only by environment variables) against the fake Bot API and the fake
Replicate API, both serving on 127.0.0.1 from the test process.

    world = await TelegramWorld.start(tmp, media)       # fakes up, bot started
    alice = world.user(1001, "Alice")
    frame = await world.open_frame(alice, "0:02.5")      # the frame preview message
    ...
    await world.stop()
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.replicate import FakeReplicate
from tests.fakes.telegram import Call, ChatUser, FakeChat, TelegramFake
from tests.media_factory import make_av_video, make_image
from tests.welcome import only_welcome

ROOT = Path(__file__).resolve().parents[1]
ADMIN_ID = 9001
VEO = "google/veo-3-fast"
WAN_ANIMATE = "wan-video/wan-2.2-animate-animation"
WAN_REPLACE = "wan-video/wan-2.2-animate-replace"
BARK = "suno-ai/bark"
_user_ids = itertools.count(2001)


def next_user_id() -> int:
    """A Telegram user id no other test in this process uses (tests share one bot)."""
    return next(_user_ids)


@dataclass(frozen=True)
class Media:
    clip: Path  # 5 s, 320×240, H.264/AAC: what users send
    result: Path  # 3 s clip the fake models return
    photo: Path  # a real JPEG


def make_media(folder: Path) -> Media:
    folder.mkdir(parents=True, exist_ok=True)
    return Media(
        clip=make_av_video(folder / "clip.mp4", seconds=5.0),
        result=make_av_video(folder / "result.mp4", seconds=3.0),
        photo=make_image(folder / "me.jpg", "320x240"),
    )


def read_database(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Rows from the bot's SQLite file, opened read-only (as an operator would look)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class BotProcess:
    """`python -m bot` with an environment and nothing else (its cwd has no .env)."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env = env
        self.home = home
        self.log_path = home / f"bot-{int(time.time() * 1000)}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("TELEGRAM_", "DISCORD_", "REPLICATE_"))}
        self.log_path = self.home / f"bot-{int(time.time() * 1000)}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot"], cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                env={**base, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **self.env},
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    async def stop(self) -> int | None:
        """SIGTERM, as an operator would; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            for _ in range(200):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            else:
                self.kill()
        return self.process.returncode

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None




@dataclass
class TelegramWorld:
    home: Path
    media: Media
    telegram: TelegramFake
    replicate: FakeReplicate | None
    env: dict[str, str]
    bot: BotProcess = field(init=False)

    @classmethod
    async def start(
        cls, home: Path, media: Media, *, replicate: bool = True, extra_env: dict[str, str] | None = None,
        telegram: TelegramFake | None = None,
    ) -> TelegramWorld:
        fake = telegram or await TelegramFake().start()
        models = None
        env = {
            "TELEGRAM_BOT_TOKEN": fake.token,
            "TELEGRAM_API_BASE": fake.base_url,
            "DATABASE_URL": f"sqlite:///{home / 'lokiz.db'}",
            "MEDIA_DIR": str(home / "media"),
            "ADMIN_IDS": f"telegram:{ADMIN_ID}",
            "HTTP_PORT": "0",
            "JOB_TIMEOUT_SECONDS": "120",
            "LOG_LEVEL": "INFO",
        }
        if replicate:
            models = await FakeReplicate().start()
            for model in (VEO, WAN_ANIMATE, WAN_REPLACE):
                models.set_media(model, media.result)
            env.update(REPLICATE_API_TOKEN=models.token, REPLICATE_BASE_URL=models.api_url)
        env.update(extra_env or {})
        world = cls(home, media, fake, models, env)
        world.bot = BotProcess(env, home)
        await world.start_bot()
        return world

    async def start_bot(self) -> None:
        """Start the bot and wait until it polls Telegram (or set its webhook)."""
        mark = self.telegram.mark()
        self.bot.start()
        tg = self.telegram

        def ready() -> bool:  # a long poll is "done" only when it returns: look at requests
            return any(c.method == "getUpdates" or (c.method == "setWebhook" and c.ok)
                       for c in tg.calls[mark:])

        try:
            await tg.wait_until(ready, timeout=90)  # importing aiogram alone takes ~20 s on a loaded 2-core machine
        except AssertionError as exc:
            raise AssertionError(f"the bot did not start:\n{self.bot.log()[-3000:]}") from exc

    async def stop(self) -> None:
        await self.bot.stop()
        await self.telegram.stop()
        if self.replicate is not None:
            await self.replicate.stop()

    # --- people and places -----------------------------------------------------------
    def user(self, first_name: str, *, user_id: int | None = None, language_code: str = "en",
             chat: FakeChat | None = None, username: str | None = None) -> ChatUser:
        return ChatUser(self.telegram, user_id or next_user_id(), first_name,
                        username=username, language_code=language_code, chat=chat)

    def group(self, title: str) -> FakeChat:
        return self.telegram.group(-1_000_000_000_000 - next_user_id(), title)

    # --- the database as the bot left it (read-only, like an operator would look) ------------
    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return read_database(self.home / "lokiz.db", sql, params)

    def balance(self, user: ChatUser) -> int:
        rows = self.query("SELECT balance FROM users WHERE platform = 'telegram' AND platform_user_id = ?",
                          (str(user.id),))
        return int(rows[0]["balance"]) if rows else 0

    def jobs(self, user: ChatUser) -> list[sqlite3.Row]:
        return self.query(
            "SELECT jobs.* FROM jobs JOIN users ON users.id = jobs.user_id"
            " WHERE users.platform = 'telegram' AND users.platform_user_id = ? ORDER BY jobs.created_at",
            (str(user.id),),
        )

    def http_port(self) -> int:
        found = re.search(r"HTTP server on http://[\d.]+:(\d+)", self.bot.log())
        assert found, self.bot.log()[-2000:]
        return int(found.group(1))

    # --- steps users take ---------------------------------------------------------------
    async def reply_to(
        self, user: ChatUser, method: str, *, after: int = 0, timeout: float = 15,
        welcome: bool = False, **params: Any
    ) -> Call:
        """The next successful `method` call into the user's chat (made after the mark `after`);
        a first contact's welcome on its own, which comes first, is passed over unless `welcome`
        (a welcome above the answer, in the same message, is the answer)."""
        def wanted(c: Call) -> bool:
            words = str(c.params.get("text") or c.params.get("caption") or "")
            return (c.method == method and c.ok and c.params.get("chat_id") == user.chat_id
                    and (welcome or not only_welcome(words)))

        return await self.telegram.wait_for(wanted, timeout=timeout, after=after, **params)

    async def say(self, user: ChatUser, text: str, *, reply_to: Any = None) -> Any:
        """Send a text; return the bot's next text message in that chat (for /start, the welcome)."""
        mark = self.telegram.mark()
        await user.send_text(text, reply_to=reply_to)
        call = await self.reply_to(user, "sendMessage", after=mark, welcome=text.startswith("/start"))
        return call.message()

    async def open_frame(self, user: ChatUser, at: str | None = "0:02.5") -> Any:
        """Send the clip with a time; return the frame preview message."""
        mark = self.telegram.mark()
        await user.send_video(self.media.clip, caption=at)
        call = await self.reply_to(user, "sendPhoto", after=mark)
        return call.message()

    async def press(self, user: ChatUser, message: Any, label: str) -> Any:
        """Press a button and wait for the bot's answer to the press."""
        press = await user.press(message, label)
        return await press.wait_answer(timeout=15)

    async def edited(self, user: ChatUser, method: str, message: Any, *, timeout: float = 15) -> Any:
        """Wait for `method` to edit `message`; return the message as it now is."""
        await self.telegram.wait_for(
            lambda c: c.method == method and c.ok and c.params.get("chat_id") == user.chat_id
            and c.params.get("message_id") == message.message_id,
            timeout=timeout,
        )
        return self.telegram.message(user.chat_id, message.message_id)

    async def confirm_on(self, user: ChatUser, message: Any) -> Any:
        """Press the ✅ Confirm (N credits) button the message shows now."""
        current = self.telegram.message(user.chat_id, message.message_id)
        label = next(b for b in self.telegram.buttons(current) if b.startswith("✅ Confirm"))
        return await self.press(user, current, label)

    async def delivered(self, user: ChatUser, method: str = "sendVideo", *, timeout: float = 30) -> Any:
        call = await self.reply_to(user, method, timeout=timeout)
        return call.message()

    def delivered_path(self, message: Any) -> Path:
        media = message.video or message.audio or message.document
        return self.telegram.file(media.file_id).path

    async def status_says(self, user: ChatUser, words: str, *, timeout: float = 30) -> Any:
        """Wait until one of the bot's text messages in the chat contains `words`."""
        def found() -> Any:
            for message in reversed(self.telegram.bot_messages(user.chat_id)):
                if message.text and words in message.text:
                    return message
            return None
        return await self.telegram.wait_until(found, timeout=timeout)

    async def wait_job(self, user: ChatUser, status: str, *, timeout: float = 30) -> sqlite3.Row:
        def found() -> sqlite3.Row | None:
            rows = self.jobs(user)
            return rows[-1] if rows and rows[-1]["status"] == status else None
        row: sqlite3.Row = await self.telegram.wait_until(found, timeout=timeout)
        return row
