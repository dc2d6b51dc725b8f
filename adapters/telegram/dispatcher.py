"""The Dispatcher: the Desk and the renderer injected by name, one Router per area."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage

from adapters.telegram.handlers import routers
from adapters.telegram.media import Downloads
from adapters.telegram.middlewares import ChatContextMiddleware
from adapters.telegram.outage import RedisOutageRetry
from adapters.telegram.render import Renderer
from core.desk import Desk


def build_dispatcher(desk: Desk, renderer: Renderer, downloads: Downloads, *,
                     shared: tuple[BaseStorage, BaseEventIsolation] | None = None,
                     redis_retry: RedisOutageRetry | None = None) -> Dispatcher:
    """`shared`: aiogram's storage and isolation in Redis; `redis_retry` (long polling with
    them): what retries an update while Redis is unreachable, around the isolation lock."""
    if shared is None:
        # Sessions live in the core's store, so aiogram's FSM is not needed (and not paid for).
        dp = Dispatcher(name="lokiz", disable_fsm=True, desk=desk, renderer=renderer,
                        downloads=downloads)
    else:  # several replicas: aiogram's storage in Redis, for its isolation of each user
        storage, isolation = shared
        # aiogram's FSM middleware (which takes the user's lock) is registered here, after
        # the retry, so that the retry wraps the lock.
        dp = Dispatcher(name="lokiz", storage=storage, events_isolation=isolation, disable_fsm=True,
                        desk=desk, renderer=renderer, downloads=downloads)
        if redis_retry is not None:
            dp.update.outer_middleware(redis_retry)
        dp.update.outer_middleware(dp.fsm)
    context = ChatContextMiddleware()
    dp.message.outer_middleware(context)
    dp.callback_query.outer_middleware(context)
    dp.include_routers(*routers())
    return dp
