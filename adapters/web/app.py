"""The web studio (SPEC §11): the studio as a page on the core's HTTP server.

Each browser is a user of platform `web`; its page is stored in the database and
streamed to the browser, so it survives reloads and reaches across instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from adapters.web.conversation import Conversation
from adapters.web.identity import Keys
from adapters.web.port import StudioPort
from adapters.web.render import PageRenderer, WebNotifier
from adapters.web.routes import WebRoutes
from core.notify import Notifier

if TYPE_CHECKING:
    from bot.app import Services


class WebAdapter:
    def __init__(self, services: Services) -> None:
        self.services = services
        keys = Keys.from_settings(services.settings)
        self.pages = pages = Conversation(services.db, keys.media_id)
        self.lifetime = keys.lifetime
        renderer = PageRenderer(pages, StudioPort(services))
        self.notifier: Notifier = WebNotifier(renderer)
        self.routes = WebRoutes(services.settings, renderer.port, pages, renderer, keys)
        # Routes must exist before the HTTP server starts, which is before run().
        self.routes.register(services.http)

    @property
    def url(self) -> str:
        http = self.services.http
        host = "127.0.0.1" if http.host in ("0.0.0.0", "") else http.host
        return f"http://{host}:{http.bound_port or http.port}/"

    async def run(self) -> None:
        print(f"LOKIZ web studio: {self.url}", flush=True)
        while True:  # the HTTP server serves the page; here old pages are forgotten, hourly
            with contextlib.suppress(Exception):
                await self.pages.forget(time.time() - self.lifetime)
            await asyncio.sleep(3600)

    async def close(self) -> None:
        self.routes.closing.set()  # live feeds end, so the HTTP server can stop at once
