"""The web studio (SPEC §11): the studio as a page on the core's HTTP server.

Each browser is a user of platform `web`; its page is stored in the database and
streamed to the browser, so it survives reloads and reaches across instances.
Like the chat adapters it is given its settings and the Desk (plus the page store).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import web

from adapters.web.identity import Keys
from adapters.web.port import StudioPort
from adapters.web.render import PageRenderer, WebNotifier
from adapters.web.routes import WebRoutes
from core.desk import Desk
from core.notify import Notifier
from core.settings import Settings
from core.web_pages import WebPages


class WebAdapter:
    def __init__(self, settings: Settings, desk: Desk, pages: WebPages) -> None:
        keys = Keys.from_settings(settings)
        self.pages = pages
        self.lifetime = keys.lifetime
        renderer = PageRenderer(pages, StudioPort(desk), keys.media_id)
        self.notifier: Notifier = WebNotifier(renderer)
        self.routes = WebRoutes(settings, renderer.port, pages, renderer, keys)

    def mount(self, app: web.Application) -> None:
        self.routes.register(app)

    async def run(self) -> None:
        while True:  # the HTTP server serves the page; here old pages are forgotten, hourly
            with contextlib.suppress(Exception):
                await self.pages.forget(time.time() - self.lifetime)
            await asyncio.sleep(3600)

    async def close(self) -> None:
        self.routes.closing.set()  # live feeds end, so the HTTP server can stop at once
