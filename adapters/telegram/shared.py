"""Telegram across several instances (`REDIS_URL`): what the replicas share.

- aiogram's `RedisEventIsolation`: one user's updates are handled one at a time whichever
  replica takes them (the lock is polled every 5 ms, not 100 ms, and renewed while held,
  so a killed replica's lock runs out after one lease, not 60 s). Its FSM storage keeps
  no state (`NoStateStorage`): sessions live in the core, so reading an empty state from
  Redis for every update was a round trip for nothing;
- `ClaimingWebhookHandler`: updates handled in the foreground and taken once by update_id
  (a lease while handling, "done" after), answered 503 when Redis is down so Telegram
  retries later: an update is never handled without isolation;
- `SendBudgetMiddleware`: every send waits for the bot's shared budget (30 a second in
  all, 20 a minute into a group);
- `set_webhook_once`: one replica sets the webhook; the others see it is already set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from aiogram.fsm.storage.redis import DefaultKeyBuilder, RedisEventIsolation
from aiogram.methods import (
    CopyMessage,
    CopyMessages,
    ForwardMessage,
    ForwardMessages,
    SendAnimation,
    SendAudio,
    SendContact,
    SendDice,
    SendDocument,
    SendLocation,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendPoll,
    SendSticker,
    SendVenue,
    SendVideo,
    SendVideoNote,
    SendVoice,
    TelegramMethod,
)
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from core.errors import SharedStoreDown
from core.redis_shared import Claim, RedisSendBudget, RedisShared, RedisUpdateClaims

log = logging.getLogger(__name__)

LOCK_POLL = 0.005  # SCALE.md: a user's second update waits ~24 ms instead of ~102 ms
RETRY_AFTER = "2"  # seconds, for an update another replica is handling (or Redis down)
WEBHOOK_MARK_TTL = 24 * 3600  # a replica starting a day later sets the webhook again

SENDS: tuple[type[TelegramMethod[Any]], ...] = (
    SendMessage, SendPhoto, SendVideo, SendAudio, SendDocument, SendAnimation, SendVoice,
    SendVideoNote, SendSticker, SendMediaGroup, SendLocation, SendVenue, SendContact,
    SendPoll, SendDice, CopyMessage, CopyMessages, ForwardMessage, ForwardMessages,
)


class RenewedEventIsolation(RedisEventIsolation):
    """aiogram's Redis isolation lock, held for `lease` seconds and renewed every third of
    it while the update is handled: a handler may run long, and a killed replica's lock
    frees its user after one lease (with a fixed 60 s timeout it would hold them 60 s)."""

    def __init__(self, redis: Any, key_builder: DefaultKeyBuilder, lease: float) -> None:
        super().__init__(redis, key_builder=key_builder,
                         lock_kwargs={"timeout": lease, "sleep": LOCK_POLL})
        self.lease = lease

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        name = self.key_builder.build(key, "lock")
        held = self.redis.lock(name=name, **self.lock_kwargs, lock_class=Lock)
        # A random token: redis-py's default (uuid1) costs more than the SET it goes with.
        try:
            await held.acquire(token=secrets.token_hex(16))
        except (RedisError, OSError) as exc:  # not handled at all: 503 (webhook) or retried (polling)
            raise SharedStoreDown(f"Redis: {type(exc).__name__}") from exc
        keeper = asyncio.create_task(self._renew(held))
        try:
            yield None
        finally:
            keeper.cancel()
            try:
                await held.release()
            except (RedisError, OSError) as exc:  # handled already: the lock runs out by itself
                log.warning("could not release an update lock: %s", exc)

    async def _renew(self, held: Lock) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await held.reacquire()
            except LockError as exc:  # not ours any more (it ran out): nothing left to renew
                log.warning("update lock lost while handling: %s", exc)
                return
            except (RedisError, OSError) as exc:  # Redis unreachable for now: try again
                log.warning("could not renew an update lock: %s", exc)


class NoStateStorage(BaseStorage):
    """aiogram's FSM storage for the replicas' dispatcher, which needs one for its isolation
    only: LOKIZ keeps no aiogram state (sessions live in the core, as in polling mode,
    where the FSM is off). Every update reads "no state" without a Redis round trip; a
    handler that tried to keep aiogram state would fail loudly instead of losing it."""

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        if state is not None:
            raise RuntimeError("LOKIZ keeps no aiogram FSM state: keep it in the core's sessions")

    async def get_state(self, key: StorageKey) -> str | None:
        return None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if data:
            raise RuntimeError("LOKIZ keeps no aiogram FSM data: keep it in the core's sessions")

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None


def fsm_parts(shared: RedisShared, lease: float) -> tuple[BaseStorage, RedisEventIsolation]:
    keys = DefaultKeyBuilder(prefix=shared.key("fsm"), with_bot_id=True)
    return NoStateStorage(), RenewedEventIsolation(shared.client, keys, lease)


def is_group(chat_id: Any) -> bool:
    """Groups and channels have negative ids (or an @username); users positive ones."""
    text = str(chat_id)
    return text.startswith("-") or not text.isdigit()


class SendBudgetMiddleware(BaseRequestMiddleware):
    """Every message the bot sends first takes a token of the shared budget. If Redis is
    down the send goes ahead (a running job finishes; Telegram's 429s are still obeyed)."""

    def __init__(self, budget: RedisSendBudget) -> None:
        self.budget = budget
        # An outage is logged once when it starts and once when it ends, not per message.
        self._down_since: float | None = None
        self._sent_without = 0

    async def __call__(self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
                       method: TelegramMethod[TelegramType]) -> Response[TelegramType]:
        if isinstance(method, SENDS):
            chat_id = getattr(method, "chat_id", None)
            try:
                await self.budget.acquire(str(chat_id), group=is_group(chat_id))
            except SharedStoreDown as exc:
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    log.warning("send budget unavailable (%s); sending anyway until it is back",
                                exc)
                self._sent_without += 1
            else:
                if self._down_since is not None:
                    log.info("send budget available again after %.0f s; %d messages went out"
                             " without it", time.monotonic() - self._down_since,
                             self._sent_without)
                    self._down_since, self._sent_without = None, 0
        return await make_request(bot, method)


def _busy(text: str) -> web.Response:
    return web.Response(status=503, text=text, headers={"Retry-After": RETRY_AFTER})


class ClaimingWebhookHandler(SimpleRequestHandler):
    """The webhook route of a replica: each update handled by one replica, in the
    foreground, marked done only once handled (see `RedisUpdateClaims`)."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, claims: RedisUpdateClaims, *,
                 secret_token: str | None) -> None:
        super().__init__(dispatcher, bot, handle_in_background=False, secret_token=secret_token)
        self.claims = claims

    async def _handle_request(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            raw = await request.json(loads=bot.session.json_loads)
            update_id = int(raw["update_id"])
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            return web.Response(status=400, text="not an update")
        try:
            claim = await self.claims.claim(update_id)
        except SharedStoreDown as exc:
            log.warning("update %d refused: %s (Telegram retries it)", update_id, exc)
            return _busy("shared store unavailable")
        if claim is Claim.DONE:
            return web.json_response({})
        if claim is Claim.BUSY:
            return _busy("being handled")
        keeper = asyncio.create_task(self.claims.keep(update_id))
        try:
            update = Update.model_validate(raw, context={"bot": bot})
            result = await self.dispatcher.feed_update(bot, update, **self.data)
        except (SharedStoreDown, RedisError) as exc:  # no isolation: not handled at all
            log.warning("update %d not handled: %s (Telegram retries it)", update_id, exc)
            with contextlib.suppress(SharedStoreDown):
                await self.claims.release(update_id)
            return _busy("shared store unavailable")
        except Exception:
            log.exception("update %d failed", update_id)  # as in polling: not retried
            result = None
        finally:
            keeper.cancel()
        try:
            await self.claims.finish(update_id)
        except SharedStoreDown as exc:  # handled: the 200 below stops Telegram resending
            log.warning("update %d handled but not marked done: %s", update_id, exc)
        if isinstance(result, TelegramMethod):
            return web.Response(body=self._build_response_writer(bot=bot, result=result))
        return web.json_response({})


async def set_webhook_once(bot: Bot, shared: RedisShared, *, url: str, secret: str,
                           max_connections: int, allowed_updates: list[str]) -> bool:
    """setWebhook unless a replica already set this very webhook (same URL, secret, limits):
    True when this replica set it."""
    wanted = json.dumps([url, secret, max_connections, sorted(allowed_updates)])
    fingerprint = hashlib.sha256(wanted.encode()).hexdigest()
    key = shared.key("telegram", str(bot.id), "webhook")
    previous = await shared.call(lambda: shared.client.set(
        key, fingerprint.encode(), ex=WEBHOOK_MARK_TTL, get=True))
    if previous is not None and previous.decode() == fingerprint:
        return False
    try:
        await bot.set_webhook(url, secret_token=secret, max_connections=max_connections,
                              allowed_updates=allowed_updates)
    except BaseException:
        await shared.call(lambda: shared.client.delete(key))
        raise
    return True
