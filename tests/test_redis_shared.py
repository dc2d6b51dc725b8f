"""What several instances share in Redis, against a real Redis: each piece seen from two
instances (two clients), and what happens when Redis is down."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import SharedStoreDown
from core.ratelimit import UpdateRateLimiter
from core.redis_shared import (
    Claim,
    RedisRateLimiter,
    RedisSeenWebhooks,
    RedisSendBudget,
    RedisShared,
    RedisTokenBucket,
    RedisUpdateClaims,
    RedisWindowLock,
)
from tests.redis_server import OwnRedis


@pytest.fixture
async def two(redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[RedisShared, RedisShared]]:
    """Two instances' connections to one Redis, with one deployment's prefix."""
    first = RedisShared.from_url(redis_url, redis_prefix)
    second = RedisShared.from_url(redis_url, redis_prefix)
    yield first, second
    await first.close()
    await second.close()


async def test_the_rate_limit_is_one_budget_for_a_user_across_instances(two) -> None:
    a, b = (RedisRateLimiter(shared, burst=4, per_second=0.001) for shared in two)
    answers = [await limiter.check("telegram:42") for limiter in (a, b, a, b, a, b)]
    assert answers == [True] * 4 + [False] * 2
    assert await a.check("telegram:43"), "another user has a budget of their own"
    # Without Redis each process has its own limiter: two of them would allow twice as much.
    local = [UpdateRateLimiter(burst=4, per_second=0.001) for _ in range(2)]
    assert [await local[i % 2].check("telegram:42") for i in range(6)] == [True] * 6


async def test_a_webhook_id_is_taken_by_one_instance_only(two) -> None:
    a, b = (RedisSeenWebhooks(shared) for shared in two)
    first = await asyncio.gather(*(seen.claim("msg_1") for seen in (a, b, a, b)))
    assert Counter(first) == Counter({True: 1, False: 3})
    assert await b.claim("msg_2")


async def test_an_update_is_handled_once_and_a_dead_instance_lease_runs_out(two) -> None:
    a, b = (RedisUpdateClaims(shared, "telegram:1", lease=0.5) for shared in two)
    assert await a.claim(100) is Claim.NEW
    assert await b.claim(100) is Claim.BUSY, "a copy while the first is being handled"
    await a.finish(100)
    assert await b.claim(100) is Claim.DONE, "a redelivery of a handled update"
    # An instance that dies mid-update never finishes: its lease runs out, then another
    # instance takes Telegram's redelivery.
    assert await a.claim(101) is Claim.NEW
    assert await b.claim(101) is Claim.BUSY
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (claim := await b.claim(101)) is not Claim.BUSY:
            break
    assert claim is Claim.NEW
    await a.finish(101)  # the first instance's late finish leaves b's lease alone
    assert await b.claim(101) is Claim.DONE


async def test_a_lease_is_kept_while_the_handler_runs(two) -> None:
    a, b = (RedisUpdateClaims(shared, "telegram:1", lease=0.3) for shared in two)
    assert await a.claim(7) is Claim.NEW
    keeper = asyncio.create_task(a.keep(7))
    try:
        for _ in range(12):  # four leases long
            await asyncio.sleep(0.1)
            assert await b.claim(7) is Claim.BUSY
    finally:
        keeper.cancel()
    await a.release(7)
    assert await b.claim(7) is Claim.NEW, "a released update is taken again at once"


async def test_the_send_budget_holds_over_every_instance(two) -> None:
    """80 sends from two instances at once: no second holds more than 30 of them, and no
    minute more than 20 into one group. Times are Redis's clock when each token was granted."""
    a, b = (RedisSendBudget(s, "1234") for s in two)
    sent: list[float] = []
    group_sent: list[float] = []

    async def send(budget: RedisSendBudget, chat: str, group: bool, into: list[float]) -> None:
        into.append(await budget.acquire(chat, group=group))

    await asyncio.gather(*(send((a, b)[i % 2], str(1000 + i), False, sent) for i in range(80)))
    sent.sort()
    assert max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent) <= 30
    assert sent[-1] - sent[0] >= 1.0, "80 sends cannot all go in one second"

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError  # stop at the first wait: no minute-long test

    c, d = (RedisSendBudget(s, "5678", sleep=record) for s in two)  # a fresh second budget
    for budget in (c, d, c, d, c, d):
        try:
            await send(budget, "-100500", True, group_sent)
        except asyncio.CancelledError:
            pass
    assert len(group_sent) == 3 and len(waits) == 3, "3 at once into a group, then 17 a minute"
    assert all(2.0 < w <= 60 / 17 + 0.01 for w in waits)


async def test_a_shared_request_budget_is_drawn_by_every_instance(two) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError

    buckets = [RedisTokenBucket(s, "replicate-creates:acct", 500 / 60, 500 / 6, sleep=record)
               for s in two]
    taken = 0
    for i in range(90):
        try:
            await buckets[i % 2].acquire()
            taken += 1
        except asyncio.CancelledError:
            break
    assert 83 <= taken < 90 and waits, "one account's burst, whichever instance creates"


async def test_identify_windows_do_not_overlap_across_processes(two) -> None:
    a, b = (RedisWindowLock(shared, "discord-identify", window=0.4, poll=0.02) for shared in two)
    await a.take(0)
    second = asyncio.create_task(b.take(0))
    await asyncio.sleep(0.2)
    assert not second.done(), "the second IDENTIFY waits for the first one's window"
    await asyncio.wait_for(second, 5)
    pttl = await two[0].client.pttl(two[0].key("lock", "discord-identify", "0"))
    assert pttl > 0, "now the second one holds the window"


async def test_redis_down_refuses_instead_of_going_on_without_it(tmp_path: Path) -> None:
    server = OwnRedis(tmp_path / "redis").start()
    shared = RedisShared.from_url(server.url, "t:")
    try:
        claims = RedisUpdateClaims(shared, "telegram:1")
        assert await shared.ping()
        assert await claims.claim(1) is Claim.NEW
        server.kill()
        assert not await shared.ping()
        with pytest.raises(SharedStoreDown):
            await claims.claim(2)
        limiter = RedisRateLimiter(shared, burst=2, per_second=0.001)
        assert [await limiter.check("discord:1") for _ in range(3)] == [True, True, False], \
            "limited by this instance alone while Redis is down"
        with pytest.raises(SharedStoreDown):
            await RedisSeenWebhooks(shared).claim("msg_9")
        server.start()  # same port: the client reconnects by itself
        for _ in range(50):
            if await shared.ping():
                break
            await asyncio.sleep(0.1)
        assert await claims.claim(2) is Claim.NEW
    finally:
        await shared.close()
        server.kill()


async def test_every_send_of_the_bot_goes_through_the_shared_budget(redis_url: str,
                                                                    redis_prefix: str) -> None:
    """The real aiogram Bot with the adapter's request middleware, against the fake Bot API:
    sends into a group wait for the group's minute; other calls do not touch the budget."""
    from adapters.telegram.shared import SendBudgetMiddleware
    from tests.fakes.telegram import TelegramFake

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        raise asyncio.CancelledError

    shared = RedisShared.from_url(redis_url, redis_prefix)
    async with TelegramFake() as fake:
        bot = fake.make_bot()
        bot.session.middleware(SendBudgetMiddleware(RedisSendBudget(shared, "77", sleep=record)))
        group = fake.group(-1_000_000_000_777, "Budget club")
        try:
            sent = 0
            for _ in range(5):
                try:
                    await bot.send_message(group.id, "hi")
                    sent += 1
                except asyncio.CancelledError:
                    break
            assert sent == 3 and len(waits) == 1, "3 at once into a group, then it waits"
            await bot.get_me()  # not a send: no budget, no wait
            assert len(waits) == 1
            assert len(fake.calls_of("sendMessage")) == 3
        finally:
            await bot.session.close()
            await shared.close()


async def test_a_redis_outage_is_logged_once_by_the_send_budget_not_per_message(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from adapters.telegram.shared import SendBudgetMiddleware
    from tests.fakes.telegram import ChatUser, TelegramFake

    caplog.set_level(logging.INFO, logger="adapters.telegram.shared")
    server = OwnRedis(tmp_path / "redis").start()
    shared = RedisShared.from_url(server.url, "t:")
    async with TelegramFake() as fake:
        bot = fake.make_bot()
        bot.session.middleware(SendBudgetMiddleware(RedisSendBudget(shared, "78")))
        user = ChatUser(fake, 4242, "Ana")
        await user.send_text("/start")
        try:
            await bot.send_message(user.id, "before")
            server.kill()
            for n in range(5):
                await bot.send_message(user.id, f"during {n}")
            budget_logs = [r for r in caplog.records if "send budget" in r.getMessage()]
            assert [r.levelno for r in budget_logs] == [logging.WARNING], \
                "one warning for the outage, not one per message"
            server.start()
            for _ in range(50):
                if await shared.ping():
                    break
                await asyncio.sleep(0.1)
            await bot.send_message(user.id, "after")
            await bot.send_message(user.id, "after again")
            budget_logs = [r for r in caplog.records if "send budget" in r.getMessage()]
            assert [r.levelno for r in budget_logs] == [logging.WARNING, logging.INFO]
            assert "5 messages went out without it" in budget_logs[1].getMessage()
            assert len(fake.calls_of("sendMessage")) == 8, "every message went out"
        finally:
            await bot.session.close()
            await shared.close()
            server.kill()


def test_settings_for_several_instances_are_checked() -> None:
    from core.errors import ConfigError
    from core.settings import load_settings

    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings(None, redis_url="http://localhost:6379")
    with pytest.raises(ConfigError, match="DISCORD_SHARD_IDS"):
        load_settings(None, discord_shard_ids="0")
    with pytest.raises(ConfigError, match="DISCORD_SHARD_IDS"):
        load_settings(None, discord_shard_ids="0,2", discord_shard_count=2)
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_MAX_CONNECTIONS"):
        load_settings(None, telegram_webhook_max_connections=101)
    settings = load_settings(None, redis_url="redis://:hunter2@cache:6379/1",
                             discord_shard_ids="1, 0", discord_shard_count="2")
    assert settings.shard_ids == [0, 1]
    assert "hunter2" in settings.secrets(), "the Redis password is scrubbed from logs"
    assert load_settings(None, redis_url="", discord_shard_ids="").redis_url is None


@pytest.mark.parametrize("shared_budget", [True, False])
async def test_two_instances_share_one_replicate_create_budget(
        two, shared_budget: bool) -> None:
    """Two instances of one Replicate account, each with its own budget of 4 at once then
    20/s: the account's limit (20 per half second) is kept only when they share it."""
    from core.backends.replicate import ReplicateBackend
    from tests.fakes.replicate import FakeReplicate

    async with FakeReplicate(create_limit=(20, 0.5)) as fake:
        backends = [
            ReplicateBackend(
                fake.token, fake.base_url, retry_base_delay=0.01, lookup_delay=0.02,
                max_requests_per_second=1000,
                max_creates_per_minute=100_000 if shared_budget else 1200,
                create_burst=100_000 if shared_budget else 4,
                shared_creates=RedisTokenBucket(shared, "replicate-creates:acct", 20, 4)
                if shared_budget else None,
            )
            for shared in two
        ]
        try:
            ids = await asyncio.gather(*(
                backends[n % 2].create(f"job-{n}", "google/veo-3-fast", {"prompt": f"clip {n}"})
                for n in range(40)))
            assert len(set(ids)) == 40 and len(fake.predictions) == 40
            if shared_budget:
                assert fake.throttled == 0
            else:
                assert fake.throttled > 0, "each instance alone keeps its own budget, not the account's"
        finally:
            for backend in backends:
                await backend.close()


async def test_a_replicate_webhook_is_taken_by_one_instance_and_refused_while_redis_is_down(
        tmp_path: Path) -> None:
    """Two instances' HTTP servers with one Redis: a delivery posted to both (Replicate
    retried it) is taken once; with Redis down it gets 503, and Replicate retries later."""
    import base64
    import time

    import aiohttp

    from bot.app import build_services
    from core.backends.replicate import ReplicateBackend
    from core.http import REPLICATE_WEBHOOK_PATH, HttpServer
    from core.settings import load_settings
    from core.webhooks import sign_webhook

    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    server = OwnRedis(tmp_path / "redis").start()
    opened = []
    try:
        for n in range(2):
            settings = load_settings(None, database_url=f"sqlite:///{tmp_path / f'{n}.db'}",
                                     media_dir=tmp_path / f"m{n}", http_port=0,
                                     redis_url=server.url, redis_key_prefix="two:")
            services = await build_services(settings)
            webhooks = ReplicateBackend("r8_unused", "http://127.0.0.1:9", webhook_secret=secret)
            assert services.shared is not None
            http = HttpServer(db=services.db, engine=services.engine, jobs=services.jobs,
                              host="127.0.0.1", port=0, webhooks=webhooks,
                              seen=RedisSeenWebhooks(services.shared))
            http.add_check("redis", services.shared.ping)
            await http.start()
            opened.append((services, webhooks, http))

        async def deliver(http: HttpServer, webhook_id: str) -> tuple[int, str]:
            body = b'{"id": "p1", "status": "succeeded", "output": null}'
            stamp = str(int(time.time()))
            headers = {"webhook-id": webhook_id, "webhook-timestamp": stamp,
                       "webhook-signature": sign_webhook(webhook_id, stamp, body, secret)}
            async with aiohttp.ClientSession() as client, client.post(
                    f"http://127.0.0.1:{http.bound_port}{REPLICATE_WEBHOOK_PATH}",
                    data=body, headers=headers) as resp:
                return resp.status, await resp.text()

        answers = await asyncio.gather(*(deliver(h, "msg_42") for _, _, h in opened))
        assert sorted(answers) == [(200, "duplicate"), (200, "ok")]
        server.kill()
        assert (await deliver(opened[0][2], "msg_43"))[0] == 503
        async with aiohttp.ClientSession() as client, client.get(
                f"http://127.0.0.1:{opened[0][2].bound_port}/healthz") as resp:
            assert (await resp.json())["redis"] == "down"
    finally:
        for services, webhooks, http in opened:
            await http.stop()
            await webhooks.close()
            await services.close()
        server.kill()


async def test_an_isolation_lock_lost_mid_update_is_not_renewed_again_and_again(two, caplog) -> None:
    # A handler outliving its lease loses the user's lock; renewing it can never succeed
    # again, so the keeper stops (it once logged a warning every few milliseconds).
    import logging

    from aiogram.fsm.storage.base import StorageKey
    from aiogram.fsm.storage.redis import DefaultKeyBuilder

    from adapters.telegram.shared import RenewedEventIsolation

    a, _ = two
    keys = DefaultKeyBuilder(prefix=a.key("fsm"), with_bot_id=True)
    isolation = RenewedEventIsolation(a.client, keys, lease=0.3)
    key = StorageKey(bot_id=1, chat_id=2, user_id=3)
    with caplog.at_level(logging.WARNING, logger="adapters.telegram.shared"):
        async with isolation.lock(key):
            await a.client.delete(keys.build(key, "lock"))  # its lease ran out
            await asyncio.sleep(0.55)  # five renewal times
    renewals = [r for r in caplog.records if "renew" in r.getMessage() or "lock lost" in r.getMessage()]
    assert len(renewals) == 1, [r.getMessage() for r in renewals]


async def test_the_replicas_isolate_each_user_in_redis_but_read_no_fsm_state_there(
        tmp_path: Path) -> None:
    # The replicas' dispatcher needs an FSM storage for aiogram's isolation only: sessions
    # live in the core. Each update locks its user in Redis and pays no round trip for an
    # (always empty) aiogram state; a handler that kept such state would fail loudly.
    from aiogram.fsm.storage.base import StorageKey

    from adapters.telegram.shared import fsm_parts

    server = OwnRedis(tmp_path / "redis").start()
    shared = RedisShared.from_url(server.url, "t:")
    try:
        storage, isolation = fsm_parts(shared, lease=5)
        key = StorageKey(bot_id=1, chat_id=2, user_id=3)
        await shared.client.config_resetstat()
        async with isolation.lock(key):
            assert await storage.get_state(key) is None
            assert await storage.get_data(key) == {}
        stats = await shared.client.info("commandstats")
        assert stats["cmdstat_set"]["calls"] == 1, "the user's lock is taken in Redis"
        # The one GET is the lock's release script's (commands in a script count too).
        assert stats["cmdstat_get"]["calls"] == 1, stats
        with pytest.raises(RuntimeError):
            await storage.set_state(key, "some-state")
        with pytest.raises(RuntimeError):
            await storage.set_data(key, {"a": 1})
        await storage.set_state(key, None)  # clearing nothing is fine
    finally:
        await shared.close()
        server.kill()


async def test_a_command_makes_no_task_of_its_own_yet_a_silent_redis_still_times_out(
        tmp_path: Path) -> None:
    # redis-py's socket_timeout ran each command's write as a task of its own (wait_for):
    # a tenth of a command's CPU. The answer still waits under the timeout, so a Redis
    # that stops answering (not gone: stopped) is still SharedStoreDown, not a hang.
    import os
    import signal

    server = OwnRedis(tmp_path / "redis").start()
    shared = RedisShared.from_url(server.url, "t:")
    shared.client.connection_pool.connection_kwargs["socket_timeout"] = 0.5
    loop = asyncio.get_running_loop()
    made: list[object] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    try:
        claims = RedisUpdateClaims(shared, "telegram:1")
        await shared.ping()  # connected
        loop.set_task_factory(counting)
        for update_id in range(20):
            assert await claims.claim(update_id) is Claim.NEW
            await claims.finish(update_id)
        loop.set_task_factory(factory)
        assert made == [], f"{len(made)} tasks for 40 commands"
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            started = loop.time()
            with pytest.raises(SharedStoreDown):
                await claims.claim(99)
            assert loop.time() - started < 5
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    finally:
        loop.set_task_factory(factory)
        await shared.close()
        server.kill()


async def test_sends_waiting_for_the_budget_ask_redis_one_at_a_time(tmp_path: Path) -> None:
    # More sends than the budget allows: they go out at its rate, in order, and only the
    # first in line asks Redis (every waiter asking for each token made the CPU grow with
    # the square of the queue). The budget still holds across instances.
    server = OwnRedis(tmp_path / "redis").start()
    first, second = (RedisShared.from_url(server.url, "t:") for _ in range(2))
    try:
        a, b = (RedisSendBudget(s, "42", per_second=12) for s in (first, second))  # 10/s, 2 saved
        await first.client.config_resetstat()
        sends = 16
        granted = await asyncio.gather(*((a, b)[i % 2].acquire(str(i), group=False)
                                         for i in range(sends)))
        stats = await first.client.info("commandstats")
        asks = stats["cmdstat_evalsha"]["calls"]
        assert asks <= 3 * sends, f"{asks} asks for {sends} sends"  # about one per instance a token
        spread = max(granted) - min(granted)
        assert spread >= (sends - 2) / 10 - 0.15, "no faster than the budget"
    finally:
        await first.close()
        await second.close()
        server.kill()
