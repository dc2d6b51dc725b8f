"""Telegram long polling with REDIS_URL while Redis is unreachable: the real bot process
(`python -m bot`, polling the fake Bot API), a `redis-server` of the test's own, stopped.

The poller has confirmed an update to Telegram before handling it, so an update whose
user's lock cannot be taken is retried in the process: handled once when Redis is back
within TELEGRAM_REDIS_RETRY_SECONDS, else its user is told to try again. Never silence,
never handled without the lock, never charged twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from core.i18n import t
from tests.fakes.telegram import Call, CallbackPress, ChatUser
from tests.redis_server import OwnRedis
from tests.telegram_world import TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")

RETRY = 8  # TELEGRAM_REDIS_RETRY_SECONDS: long enough to bring Redis back within it
UNAVAILABLE = {lang: t(lang, "telegram.briefly_unavailable") for lang in ("en", "ko")}


@dataclass
class Polling:
    world: TelegramWorld
    redis: OwnRedis


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def polling(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Polling]:
    home = tmp_path_factory.mktemp("telegram-polling-redis")
    redis = OwnRedis(home / "redis").start()
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": "polling:",
           "TELEGRAM_REDIS_RETRY_SECONDS": str(RETRY)}
    world = await TelegramWorld.start(home, make_media(home / "input"), extra_env=env)
    try:
        assert "long polling with REDIS_URL" in world.bot.log()
        yield Polling(world, redis)
    finally:
        await world.stop()
        redis.kill()


def texts_to(world: TelegramWorld, user: ChatUser, after: int) -> list[str]:
    """The words of every message the bot sent into the user's chat since `after`, in order."""
    return [str(c.params.get("text")) for c in world.telegram.calls[after:]
            if c.method == "sendMessage" and c.ok and c.params.get("chat_id") == user.chat_id]


def answers(world: TelegramWorld, press: CallbackPress) -> list[Call]:
    return world.telegram.calls_of("answerCallbackQuery", callback_query_id=press.id)


def warnings_about(world: TelegramWorld, words: str) -> list[str]:
    return [line for line in world.bot.log().splitlines() if "WARNING" in line and words in line]


async def settle(seconds: float = 1.5) -> None:
    """Time for anything more the bot would send (there must be nothing)."""
    await asyncio.sleep(seconds)


async def test_redis_down_for_good_the_user_is_told_to_try_again(polling: Polling) -> None:
    world, redis, tg = polling.world, polling.redis, polling.world.telegram
    ana = world.user("Ana")
    kim = world.user("Kim", language_code="ko")
    languages = await world.say(ana, "/lang")  # a message with buttons, while Redis is up
    before = len(warnings_about(world, "not handled: Redis unreachable"))
    redis.kill()
    try:
        mark = tg.mark()
        await ana.send_text("/balance")
        press = await ana.press(languages, "한국어")
        await kim.send_text("/balance")
        await tg.wait_until(lambda: len(texts_to(world, ana, mark)) >= 2
                            and len(texts_to(world, kim, mark)) >= 1, timeout=RETRY + 30)
        await settle()
        assert texts_to(world, ana, mark) == [UNAVAILABLE["en"], UNAVAILABLE["en"]], \
            "the command and the press each get the message, once"
        assert texts_to(world, kim, mark) == [UNAVAILABLE["ko"]], "in the user's language"
        assert [c.ok for c in answers(world, press)] == [True], "the press answered once"
        assert world.query("SELECT language FROM users WHERE platform_user_id = ?",
                           (str(ana.id),))[0]["language"] in (None, "", "en"), "the press was not handled"
        given_up = warnings_about(world, "not handled: Redis unreachable")[before:]
        assert len(given_up) == 3, "one WARNING line per update"
        assert not any(tg.token in line or redis.url in line for line in given_up)
    finally:
        redis.start()


async def test_redis_back_within_the_window_the_update_is_handled_once(polling: Polling) -> None:
    world, redis, tg = polling.world, polling.redis, polling.world.telegram
    bo = world.user("Bo")
    languages = await world.say(bo, "/lang")
    before = len(warnings_about(world, "handled after"))
    redis.kill()
    try:
        mark = tg.mark()
        await bo.send_text("/balance")
        press = await bo.press(languages, "한국어")
        await asyncio.sleep(1.5)  # the bot tries, fails, and waits
        assert texts_to(world, bo, mark) == []
    finally:
        redis.start()
    await tg.wait_until(lambda: len(texts_to(world, bo, mark)) >= 2, timeout=RETRY + 30)
    await settle()
    said = texts_to(world, bo, mark)
    assert len(said) == 2 and not set(said) & set(UNAVAILABLE.values()), said
    # Both waited for the same lock: either may be handled first (so either language).
    balance = ("Balance: 50 credits", "잔액: 50 크레딧")
    assert sum(any(b in text for b in balance) for text in said) == 1, "/balance answered once"
    assert said.count(t("ko", "account.language_set")) == 1, "the press handled once"
    assert [c.ok for c in answers(world, press)] == [True], "the press answered once"
    assert len(warnings_about(world, "handled after")) - before == 2, "one WARNING line per update"


async def test_a_confirm_pressed_twice_while_redis_is_down_is_charged_once(polling: Polling) -> None:
    world, redis, tg = polling.world, polling.redis, polling.world.telegram
    cy = world.user("Cy")
    frame = await world.open_frame(cy)
    for label in ("🎬 Template", "AI hug", "Next ➡"):
        await world.press(cy, frame, label)
        frame = await world.edited(cy, "editMessageCaption", frame)
    assert "50 → 30" in frame.caption
    confirm = next(b for b in tg.buttons(frame) if b.startswith("✅ Confirm"))
    redis.kill()
    try:
        presses = [await cy.press(frame, confirm), await cy.press(frame, confirm)]  # impatient
        await asyncio.sleep(1.5)
        assert world.jobs(cy) == []
    finally:
        redis.start()
    await world.delivered(cy, timeout=RETRY + 60)
    await settle()
    assert len(world.jobs(cy)) == 1, "one job for the two presses"
    assert world.balance(cy) == 30, "charged once"
    charges = world.query(
        "SELECT ledger.* FROM ledger JOIN users ON users.id = ledger.user_id"
        " WHERE users.platform_user_id = ? AND ledger.kind = 'charge'", (str(cy.id),))
    assert len(charges) == 1
    assert [[c.ok for c in answers(world, p)] for p in presses] == [[True], [True]]
    assert not set(texts_to(world, cy, 0)) & set(UNAVAILABLE.values()), "handled, not refused"


async def test_an_update_waiting_for_redis_is_answered_when_the_bot_stops(polling: Polling) -> None:
    """Last in the module: it stops the bot."""
    world, redis, tg = polling.world, polling.redis, polling.world.telegram
    dee = world.user("Dee")
    redis.kill()
    try:
        mark = tg.mark()
        await dee.send_text("/balance")
        await tg.wait_until(lambda: not tg.pending_updates, timeout=10)  # confirmed: not sent again
        await asyncio.sleep(1)  # the bot tried, and waits for Redis
        assert texts_to(world, dee, mark) == []
        assert await world.bot.stop() == 0  # SIGTERM, as an operator would
        assert texts_to(world, dee, mark) == [UNAVAILABLE["en"]]
        assert len(warnings_about(world, "the bot is stopping")) == 1
    finally:
        redis.start()
