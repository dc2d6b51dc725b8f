"""One Router per area; `routers()` builds fresh ones (a Router joins one Dispatcher only).

Every handler does the same three things: read the update, build a Desk event,
`desk.serve(event, renderer.outlet(ctx))`.
"""

from __future__ import annotations

from aiogram import Router

from adapters.telegram.handlers import account, admin, callbacks, groups, social, studio


def routers() -> list[Router]:
    # Commands first: the studio's text handler takes every other text.
    return [admin.router(), account.router(), groups.router(), social.router(), studio.router(),
            callbacks.router()]
