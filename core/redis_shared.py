"""What several instances must share, kept in Redis (`REDIS_URL`).

Each class here is the shared twin of an in-process one that a single instance
keeps using without Redis:

- `RedisRateLimiter`: the per-user update limit (`core.ratelimit.UpdateRateLimiter`);
- `RedisTokenBucket`: a request budget over every instance (the Replicate create
  budget, `core.backends.replicate.TokenBucket`; the Telegram send budget);
- `RedisSeenWebhooks`: Replicate webhook ids already taken (`core.webhooks.SeenWebhooks`);
- `RedisUpdateClaims`: which Telegram updates are being handled or were handled;
- `RedisWindowLock`: a lock held for a fixed window (Discord's IDENTIFY, one per bucket).

Every key starts with the deployment's prefix (`REDIS_KEY_PREFIX`). When Redis
cannot be reached, calls raise `SharedStoreDown`: the caller refuses the work
(Telegram then retries the update) rather than doing it without the shared state.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from core.errors import SharedStoreDown
from core.ratelimit import UpdateRateLimiter

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = [
    "Claim", "RedisRateLimiter", "RedisSeenWebhooks", "RedisSendBudget", "RedisShared",
    "RedisTokenBucket", "RedisUpdateClaims", "RedisWindowLock", "SharedStoreDown",
]

# A handled update is answered 200 and not sent again, unless that answer was lost: then
# Telegram resends it within minutes. An hour covers that at ~100 bytes a key (≈ 50 MB at
# 150 updates/s); an unanswered update is never marked done, whatever its age.
UPDATE_DONE_TTL = 3600
SEEN_WEBHOOK_TTL = 600  # ≥ twice the webhook signature tolerance


class RedisShared:
    """One Redis client and the deployment's key prefix, for every shared piece."""

    def __init__(self, client: aioredis.Redis, prefix: str = "lokiz:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "lokiz:") -> RedisShared:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=15,
        )
        pool = client.connection_pool
        pool.connection_class = _quick_write(pool.connection_class)  # none made yet
        return cls(client, prefix)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def ping(self) -> bool:
        """The readiness check: True when Redis answers (never raises)."""
        try:
            pong: Any = self.client.ping()
            return bool(await pong)
        except (RedisError, OSError):
            return False

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis call; a connection or server failure becomes `SharedStoreDown`."""
        try:
            return await make()
        except (RedisError, OSError) as exc:
            raise SharedStoreDown(f"Redis: {type(exc).__name__}") from exc

    async def close(self) -> None:
        await self.client.aclose()


def _quick_write(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """`base` (TCP, TLS or Unix socket) writing each command without a task of its own.

    With `socket_timeout`, redis-py wraps every command's write in `asyncio.wait_for`, which
    runs it as a new task: a tenth of the CPU of a command, and each update makes several.
    A command is a few hundred bytes, so its write goes out at once; the wait for the
    answer still has the timeout (a Redis that stops answering is still `SharedStoreDown`).
    """

    class QuickWrite(base):  # type: ignore[misc,valid-type]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            if not self.is_connected:  # (re)connecting: as redis-py does it
                await super().send_packed_command(command, check_health)
                return
            if check_health:
                await self.check_health()
            timeout: float | None = self.socket_timeout  # type: ignore[has-type]
            self.socket_timeout = None
            try:  # one command at a time on a connection: nothing else sees the None
                await super().send_packed_command(command, check_health=False)
            finally:
                self.socket_timeout = timeout

    QuickWrite.__name__ = QuickWrite.__qualname__ = f"QuickWrite{base.__name__}"
    return QuickWrite


# A token bucket in one hash: {tokens, at (ms)}. Returns {0, now} when a token was taken,
# else {the milliseconds until one will be there, now}. The clock (ms) is Redis's, shared
# by everyone.
_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local rate = tonumber(ARGV[1])        -- tokens per millisecond
local capacity = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  at = now
end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ttl)
return {wait, now}
"""


class _Bucket:
    """The script and the rules of one family of token buckets."""

    def __init__(self, shared: RedisShared, rate: float, capacity: float) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs rate > 0 and capacity >= 1")
        self.shared = shared
        self.rate = rate
        self.capacity = capacity
        self._script = shared.client.register_script(_BUCKET)
        # A full bucket is forgotten: it refills in capacity / rate seconds.
        self._ttl_ms = int(max(1.0, capacity / rate) * 1000) + 1000

    async def take(self, key: str) -> tuple[float, float]:
        """Take a token from `key`'s bucket: (0.0, when) or (the seconds to wait, when),
        nothing taken then; `when` is Redis's clock, in seconds."""
        wait_ms, now_ms = await self.shared.call(lambda: self._script(
            keys=[key], args=[self.rate / 1000.0, self.capacity, self._ttl_ms]))
        return int(wait_ms) / 1000.0, int(now_ms) / 1000.0


class RedisRateLimiter:
    """The per-user update limit shared by every instance: `burst` at once, `per_second`
    sustained (the in-process twin is `core.ratelimit.UpdateRateLimiter`). While Redis is
    down each instance limits on its own: a Discord user is still served (a Telegram
    update never gets this far without Redis: it is refused with 503 before)."""

    def __init__(self, shared: RedisShared, burst: int = 12, per_second: float = 1.0) -> None:
        self._bucket = _Bucket(shared, per_second, burst)
        self._shared = shared
        self._fallback = UpdateRateLimiter(burst, per_second)

    async def check(self, key: str) -> bool:
        try:
            wait, _ = await self._bucket.take(self._shared.key("rate", key))
        except SharedStoreDown:
            return self._fallback.allow(key)
        return wait == 0.0


class RedisTokenBucket:
    """`acquire()` waits for a token of a bucket every instance draws from: `rate` per
    second, `capacity` saved up; any window of T seconds holds at most capacity + rate·T."""

    def __init__(self, shared: RedisShared, name: str, rate: float, capacity: float,
                 *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._bucket = _Bucket(shared, rate, capacity)
        self._key = shared.key("budget", name)
        self._sleep = sleep

    async def acquire(self) -> None:
        while (wait := (await self._bucket.take(self._key))[0]) > 0:
            await self._sleep(wait)


class RedisSendBudget:
    """Telegram's send limits over every instance of one bot: at most `per_second` messages
    a second in all, and `per_group_minute` a minute into any one group."""

    def __init__(self, shared: RedisShared, bot_id: str, *, per_second: int = 30,
                 per_group_minute: int = 20,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        # capacity + rate·window ≤ the limit, for every window.
        self._all = _Bucket(shared, per_second * 5 / 6, per_second / 6)
        self._group = _Bucket(shared, per_group_minute * 0.85 / 60, per_group_minute * 0.15)
        self._shared = shared
        self._bot = bot_id
        self._sleep = sleep
        # This instance's sends queue here, in order, for the global bucket: only the first
        # asks Redis. When the bot sends faster than the budget, every waiter used to wake
        # and ask for the one token each time one came: CPU growing with the square of the
        # queue (most of an instance's CPU past ~25 sends a second, for no extra sends).
        self._turn = asyncio.Lock()

    async def acquire(self, chat_id: str, *, group: bool) -> float:
        """Wait for a send into `chat_id` (first the group's minute, then the global second);
        returns when the global token was granted (Redis's clock, seconds)."""
        if group:
            key = self._shared.key("send", self._bot, "chat", chat_id)
            while (wait := (await self._group.take(key))[0]) > 0:
                await self._sleep(wait)
        key = self._shared.key("send", self._bot, "all")
        async with self._turn:
            while True:
                wait, granted = await self._all.take(key)
                if wait == 0:
                    return granted
                await self._sleep(wait)


class RedisSeenWebhooks:
    """Replicate webhook ids already taken by any instance (twin: `SeenWebhooks`)."""

    def __init__(self, shared: RedisShared, ttl: int = SEEN_WEBHOOK_TTL) -> None:
        self._shared = shared
        self._ttl = ttl

    async def claim(self, webhook_id: str) -> bool:
        """True the first time any instance offers `webhook_id` (within the TTL)."""
        key = self._shared.key("seen-webhook", webhook_id)
        return bool(await self._shared.call(
            lambda: self._shared.client.set(key, b"1", nx=True, ex=self._ttl)))


class Claim(enum.Enum):
    NEW = "new"  # this instance handles it now
    BUSY = "busy"  # another instance is handling it: ask the sender to come back later
    DONE = "done"  # handled already: acknowledge, do nothing


# Take an update unless it is done or leased: "done" outlives the lease.
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 'done' end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'new' end
return 'busy'
"""
# Mark done and drop the lease, only while the lease is still ours.
_FINISH = """
redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisUpdateClaims:
    """Each update handled once across instances, and never lost to a killed one.

    `claim` takes a short lease ("in progress", SET NX with a TTL, renewed while the
    handler runs); `finish` sets the long "done" key only after the update was handled.
    An instance killed mid-update stops renewing its lease, so Telegram's redelivery is
    taken by another instance once the lease runs out.
    """

    def __init__(self, shared: RedisShared, scope: str, *, lease: float = 30.0,
                 done_ttl: int = UPDATE_DONE_TTL) -> None:
        self._shared = shared
        self._scope = scope
        self.lease = lease
        self._done_ttl = done_ttl
        self._owner = hashlib.sha256(f"{time.time_ns()}:{id(self)}".encode()).hexdigest()[:16]
        client = shared.client
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)

    def _keys(self, update_id: int) -> list[str]:
        return [self._shared.key("update", self._scope, str(update_id), "lease"),
                self._shared.key("update", self._scope, str(update_id), "done")]

    async def claim(self, update_id: int) -> Claim:
        answer = await self._shared.call(lambda: self._claim(
            keys=self._keys(update_id), args=[self._owner, int(self.lease * 1000)]))
        return Claim(answer.decode() if isinstance(answer, bytes) else str(answer))

    async def finish(self, update_id: int) -> None:
        await self._shared.call(lambda: self._finish(
            keys=self._keys(update_id), args=[self._owner, self._done_ttl]))

    async def release(self, update_id: int) -> None:
        """Give the update back (not handled): its redelivery may be taken at once."""
        await self._shared.call(lambda: self._release(
            keys=self._keys(update_id)[:1], args=[self._owner]))

    async def keep(self, update_id: int) -> None:
        """Renew the lease every third of it until cancelled (while the handler runs)."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self._shared.call(lambda: self._extend(
                    keys=self._keys(update_id)[:1], args=[self._owner, int(self.lease * 1000)]))
            except SharedStoreDown:
                log.warning("update %s: could not renew its lease", update_id)


class RedisWindowLock:
    """A lock per name that, once taken, stays taken for `window` seconds (it is not
    released): how Discord's IDENTIFY is spaced across processes (one per bucket per 5 s)."""

    def __init__(self, shared: RedisShared, name: str, window: float = 5.0, *,
                 poll: float = 0.1) -> None:
        self._shared = shared
        self._name = name
        self.window = window
        self._poll = poll

    async def take(self, bucket: int | str) -> None:
        key = self._shared.key("lock", self._name, str(bucket))
        millis = int(self.window * 1000)
        while True:
            taken: Any = await self._shared.call(
                lambda: self._shared.client.set(key, b"1", nx=True, px=millis))
            if taken:
                return
            left = await self._shared.call(lambda: self._shared.client.pttl(key))
            await asyncio.sleep(max(self._poll, int(left) / 1000.0) if left and int(left) > 0
                                else self._poll)
