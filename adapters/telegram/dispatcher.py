"""The Dispatcher: the Desk and the renderer injected by name, one Router per area."""

from __future__ import annotations

from aiogram import Dispatcher
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage

from adapters.telegram.handlers import routers
from adapters.telegram.media import Downloads
from adapters.telegram.middlewares import ChatContextMiddleware
from adapters.telegram.render import Renderer
from core.desk import Desk


def build_dispatcher(desk: Desk, renderer: Renderer, downloads: Downloads, *,
                     shared: tuple[BaseStorage, BaseEventIsolation] | None = None) -> Dispatcher:
    if shared is None:
        # Sessions live in the core's store, so aiogram's FSM is not needed (and not paid for).
        dp = Dispatcher(name="lokiz", disable_fsm=True, desk=desk, renderer=renderer,
                        downloads=downloads)
    else:  # several replicas: aiogram's storage in Redis, for its isolation of each user
        storage, isolation = shared
        dp = Dispatcher(name="lokiz", storage=storage, events_isolation=isolation, desk=desk,
                        renderer=renderer, downloads=downloads)
    context = ChatContextMiddleware()
    dp.message.outer_middleware(context)
    dp.callback_query.outer_middleware(context)
    dp.include_routers(*routers())
    return dp
