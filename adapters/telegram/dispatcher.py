"""The Dispatcher: core services injected by name, outer middlewares, one Router per area."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import Dispatcher

from adapters.telegram.handlers import routers
from adapters.telegram.media import Downloads
from adapters.telegram.middlewares import ChatContextMiddleware, ErrorMiddleware
from adapters.telegram.render import Renderer

if TYPE_CHECKING:
    from bot.app import Services


def build_dispatcher(services: Services, renderer: Renderer, downloads: Downloads) -> Dispatcher:
    # Sessions live in the core's store, so aiogram's FSM is not needed (and not paid for).
    dp = Dispatcher(
        name="lokiz", disable_fsm=True,
        services=services, studio=services.studio, account=services.account,
        admin=services.admin, renderer=renderer, downloads=downloads,
    )
    dp.update.outer_middleware(ErrorMiddleware())
    context = ChatContextMiddleware()
    dp.message.outer_middleware(context)
    dp.callback_query.outer_middleware(context)
    dp.include_routers(*routers())
    return dp
