"""Telegram webhook mode over two replicas (REDIS_URL): two real `python -m bot` processes
on one PostgreSQL and one Redis, behind a round-robin load balancer that the fake Bot API
posts updates to, as Telegram would post to the operator's proxy.

Each update is handled once (a copy is answered "later" while in progress, "done" after),
an update whose replica was killed mid-way is handled after Telegram's redelivery, and
while Redis is down updates get 503 (Telegram keeps them) instead of being handled
without isolation.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
import psycopg
import pytest
import pytest_asyncio
from aiohttp import web

from adapters.telegram.app import WEBHOOK_PATH
from tests.redis_server import OwnRedis, free_port
from tests.telegram_world import BotProcess, TelegramWorld, make_media

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "replicas-share-this-secret"
LEASE = 2  # seconds: TELEGRAM_UPDATE_LEASE_SECONDS, short for the kill test


@dataclass
class Balancer:
    """Round-robin over the replicas; a replica that cannot be reached is answered 502 (the
    sender retries), as a proxy without retries on POST does."""

    backends: list[str]
    port: int = field(default_factory=free_port)
    answered: Counter[tuple[int, int]] = field(default_factory=Counter)  # (backend, status)
    in_flight: dict[int, int] = field(default_factory=dict)  # update_id -> backend
    bodies: dict[int, bytes] = field(default_factory=dict)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    async def start(self) -> Balancer:
        app = web.Application()
        app.router.add_post(WEBHOOK_PATH, self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._client = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        update_id = int(json.loads(body)["update_id"])
        self.bodies[update_id] = body
        index = next(self._turn) % len(self.backends)
        self.in_flight[update_id] = index
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")}
        try:
            async with self._client.post(self.backends[index] + WEBHOOK_PATH, data=body,
                                         headers=headers) as resp:
                status, reply = resp.status, await resp.read()
                kind = resp.headers.get("Content-Type", "application/json")
        except aiohttp.ClientError:
            status, reply, kind = 502, b"bad gateway", "text/plain"
        finally:
            self.in_flight.pop(update_id, None)
        self.answered[(index, status)] += 1
        return web.Response(status=status, body=reply, headers={"Content-Type": kind})


@dataclass
class Replicas:
    world: TelegramWorld
    balancer: Balancer
    redis: OwnRedis
    bots: list[BotProcess]
    ports: list[int]

    async def start_replica(self, index: int) -> None:
        bot = BotProcess({**self.world.env, "HTTP_PORT": str(self.ports[index])}, self.world.home)
        bot.start()
        self.bots[index] = bot
        for _ in range(1800):
            if "receiving updates by webhook" in bot.log() or not bot.alive:
                break
            await asyncio.sleep(0.05)
        assert bot.alive and "receiving updates by webhook" in bot.log(), bot.log()[-3000:]

    async def post_direct(self, index: int, body: bytes) -> int:
        """Post an update straight to one replica, as Telegram would (with the secret)."""
        async with aiohttp.ClientSession() as http, http.post(
            f"http://127.0.0.1:{self.ports[index]}{WEBHOOK_PATH}", data=body,
            headers={"Content-Type": "application/json",
                     "X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
            return resp.status


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replicas(tmp_path_factory: pytest.TempPathFactory,
                   postgres_database: str) -> AsyncIterator[Replicas]:
    home = tmp_path_factory.mktemp("telegram-replicas")
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    redis = OwnRedis(home / "redis").start()
    ports = [free_port(), free_port()]
    balancer = await Balancer([f"http://127.0.0.1:{p}" for p in ports]).start()
    env = {
        "TELEGRAM_WEBHOOK": "true", "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "PUBLIC_URL": balancer.url, "HTTP_PORT": str(ports[0]),
        "DATABASE_URL": f"{postgres_database}?options={quote(f'-csearch_path={schema}')}",
        "REDIS_URL": redis.url, "REDIS_KEY_PREFIX": "replicas:",
        "TELEGRAM_UPDATE_LEASE_SECONDS": str(LEASE),
    }
    world = await TelegramWorld.start(home, make_media(home / "input"), replicate=False,
                                      extra_env=env)
    group = Replicas(world, balancer, redis, [world.bot, world.bot], ports)
    try:
        await group.start_replica(1)
        yield group
    finally:
        for bot in group.bots[1:]:
            await bot.stop()
        await world.stop()
        await balancer.stop()
        redis.kill()
        with psycopg.connect(postgres_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def sends_to(world: TelegramWorld, chat_id: int) -> list[object]:
    return [c for c in world.telegram.calls
            if c.method == "sendMessage" and c.ok and c.params.get("chat_id") == chat_id]


async def test_one_webhook_and_any_replica_takes_any_update(replicas: Replicas) -> None:
    tg, world = replicas.world.telegram, replicas.world
    setups = tg.calls_of("setWebhook")
    assert len(setups) == 1, "one replica set the webhook; the other saw it set"
    assert setups[0].params["secret_token"] == SECRET
    assert int(setups[0].params["max_connections"]) <= 100
    people = [world.user(f"Rep{i}") for i in range(6)]
    for person in people:
        assert (await world.say(person, "/start")).text
    assert all(len(sends_to(world, p.chat_id)) == 1 for p in people)
    took = {backend for (backend, status), n in replicas.balancer.answered.items() if status == 200}
    assert took == {0, 1}, replicas.balancer.answered


async def test_a_copy_of_an_update_is_handled_once(replicas: Replicas) -> None:
    world, tg = replicas.world, replicas.world.telegram
    dana = world.user("Dana")
    tg.fail_next("sendMessage", code=None, delay=1.5, chat_id=dana.chat_id)  # a slow handler
    mark = tg.mark()
    await dana.send_text("/start")
    await tg.wait_until(lambda: any(  # the reply is on its way (not answered yet)
        c.method == "sendMessage" and c.params.get("chat_id") == dana.chat_id
        for c in tg.calls[mark:]), timeout=30)
    update_id, body = max(replicas.balancer.bodies.items())
    handling = replicas.balancer.in_flight[update_id]
    other = 1 - handling
    assert await replicas.post_direct(other, body) == 503, "in progress elsewhere: come back later"
    await world.reply_to(dana, "sendMessage", after=mark, welcome=True, timeout=20)
    await tg.wait_until(lambda: update_id not in replicas.balancer.in_flight, timeout=20)
    for index in (0, 1, 0, 1):  # Telegram's redeliveries of an update that was handled
        assert await replicas.post_direct(index, body) == 200
    await asyncio.sleep(0.5)
    assert len(sends_to(world, dana.chat_id)) == 1


async def test_redis_down_means_503_and_the_update_waits(replicas: Replicas) -> None:
    world, tg, redis = replicas.world, replicas.world.telegram, replicas.redis
    erin = world.user("Erin")
    redis.kill()
    try:
        mark = len(tg.webhook_deliveries)
        await erin.send_text("/start")
        await tg.wait_until(lambda: sum(1 for d in tg.webhook_deliveries[mark:] if d.status == 503) >= 3,
                            timeout=20)
        assert not sends_to(world, erin.chat_id), "never handled without isolation"
        assert all(d.status == 503 for d in tg.webhook_deliveries[mark:])
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{replicas.ports[0]}/healthz") as resp:
            assert resp.status == 503 and (await resp.json())["redis"] == "down"
    finally:
        redis.start()
    await world.reply_to(erin, "sendMessage", welcome=True, timeout=30)
    assert len(sends_to(world, erin.chat_id)) == 1


async def test_an_update_of_a_killed_replica_is_handled_after_redelivery(replicas: Replicas) -> None:
    world, tg = replicas.world, replicas.world.telegram
    fay = world.user("Fay")
    # The replica's reply hangs (and is then dropped): it is killed in the middle.
    tg.fail_next("sendMessage", code=None, delay=8, disconnect=True, chat_id=fay.chat_id)
    mark = tg.mark()
    await fay.send_text("/start")
    await tg.wait_until(lambda: any(  # the reply is on its way (not answered yet)
        c.method == "sendMessage" and c.params.get("chat_id") == fay.chat_id
        for c in tg.calls[mark:]), timeout=30)
    update_id = max(replicas.balancer.bodies)
    victim = replicas.balancer.in_flight[update_id]
    replicas.bots[victim].kill()
    reply = await world.reply_to(fay, "sendMessage", after=mark, welcome=True, timeout=40)
    assert reply.ok
    assert len(sends_to(world, fay.chat_id)) == 1, "handled once, by the replica still up"
    await tg.wait_until(lambda: any(d.status == 200 for d in tg.webhook_deliveries
                                    if d.update_id == update_id), timeout=20)
    statuses = [d.status for d in tg.webhook_deliveries if d.update_id == update_id]
    assert statuses[-1] == 200 and any(s != 200 for s in statuses[:-1]), statuses
    await replicas.start_replica(victim)  # the operator's restart: it joins again
