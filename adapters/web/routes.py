"""The web studio's HTTP routes: the page, its live feed (server-sent events), uploads
streamed to disk, presses, typed text, account answers and the owner's media."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.web.identity import Keys, new_user_id, same_origin
from adapters.web.port import StudioPort
from adapters.web.render import PageRenderer
from core.i18n import t
from core.ratelimit import UpdateRateLimiter
from core.settings import Settings
from core.studio.replies import ChatContext
from core.web_pages import WebPages

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MB = 1024 * 1024
POLL_SECONDS = 1.0  # how often a live page looks at the database for news from other instances
KEEPALIVE_SECONDS = 15.0
UPLOAD_IDLE_SECONDS = 30.0  # an upload that sends nothing for this long is dropped
# same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on form posts.
SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY"}
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
            " media-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none';"
            " base-uri 'none'")
MEDIA_CSP = "default-src 'none'; sandbox"
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


@dataclass(frozen=True)
class Visit:
    ctx: ChatContext
    lang: str

    @property
    def chat(self) -> str:
        return self.ctx.chat_id


Handler = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def answer(alerts: list[str], status: int = 200) -> web.Response:
    return web.json_response({"alerts": alerts}, status=status, headers=SECURITY)


async def _receive(request: web.Request, path: Path, limit: int) -> int | None:
    """Stream the body to `path`; its size, or None past `limit` bytes (never held in memory)."""
    if (request.content_length or 0) > limit:
        return None
    size = 0
    with path.open("wb") as out:
        while chunk := await asyncio.wait_for(request.content.readany(), UPLOAD_IDLE_SECONDS):
            size += len(chunk)
            if size > limit:
                return None
            out.write(chunk)
    return size


class WebRoutes:
    def __init__(self, settings: Settings, port: StudioPort, pages: WebPages,
                 renderer: PageRenderer, keys: Keys) -> None:
        self.settings = settings
        self.access_attempts = UpdateRateLimiter(burst=5, per_second=0.1)  # against guessing
        self.port = port
        self.pages = pages
        self.renderer = renderer
        self.keys = keys
        self.closing = asyncio.Event()

    def register(self, app: web.Application) -> None:
        # /upload reads its own body, chunk by chunk, to disk (bot/app.py exempts it).
        app.router.add_get("/", self.page)
        app.router.add_post("/access", self.access)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/events", self.visitor(self.events))
        app.router.add_get("/media/{id}", self.visitor(self.media))
        for path, handler in (("/upload", self.upload), ("/say", self.say),
                              ("/press", self.press), ("/account", self.account)):
            app.router.add_post(path, self.visitor(handler, post=True))

    # --- who is asking -----------------------------------------------------------------
    def context(self, request: web.Request, visitor: str) -> ChatContext:
        language = request.headers.get("Accept-Language", "").split(",")[0].split(";")[0]
        return self.port.context(visitor, language.strip() or None)

    def visitor(self, handler: Handler, *, post: bool = False) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Cookie, origin and a translated answer to anything unexpected (the Desk rate-limits)."""

        async def handle(request: web.Request) -> web.StreamResponse:
            visitor = self.keys.visitor(request)
            ctx = self.context(request, visitor or "0")
            if post and not same_origin(request, self.settings.public_url):
                return answer([t(await self.port.language(ctx), "web.cross_origin")], 403)
            if visitor is None:
                return answer([t(await self.port.language(ctx), "web.signed_out")], 401)
            try:
                return await handler(request, Visit(ctx, await self.port.language(ctx)))
            except web.HTTPException:
                raise
            except Exception:
                log.exception("web request %s failed", request.path)
                return answer([t(await self.port.language(ctx), "error.generic")], 500)

        return handle

    # --- the page ----------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        visitor = self.keys.visitor(request)
        ctx = self.context(request, visitor or "0")
        if visitor is None and self.keys.access_code is not None:
            return self.html("access.html", await self.port.language(ctx), wrong="")
        visitor = visitor or new_user_id()
        ctx = replace(ctx, user_id=visitor, chat_id=visitor)
        if not await self.pages.since(visitor, 0):  # a first visit: the studio says hello
            await self.renderer.render(visitor, await self.port.welcome(ctx))
        lang = await self.port.language(ctx)
        response = self.html("studio.html", lang, me=f"web:{visitor}",  # what an admin grants to
                             limit=self.settings.web_max_upload_mb * MB,
                             too_large=t(lang, "web.too_large", limit_mb=self.settings.web_max_upload_mb))
        self.keys.issue(response, visitor, request.secure)  # sliding: the TTL counts from the last visit
        return response

    async def access(self, request: web.Request) -> web.Response:
        ctx = self.context(request, "0")
        lang = await self.port.language(ctx)
        if not same_origin(request, self.settings.public_url):
            return answer([t(lang, "web.cross_origin")], 403)
        form = await request.post()
        if not self.access_attempts.allow(str(request.remote)) or \
                not self.keys.code_ok(str(form.get("code", ""))):
            return self.html("access.html", lang, wrong=t(lang, "web.access_wrong"), status=403)
        response = web.HTTPSeeOther("/")
        self.keys.issue(response, new_user_id(), request.secure)
        raise response

    def html(self, name: str, lang: str, status: int = 200, **values: Any) -> web.Response:
        """`name` (the studio or the access form) inside the page frame, in the visitor's language."""
        texts = {key.removeprefix("web.").replace(".", "_"): html.escape(t(lang, key))
                 for key in ("web.title", "web.send", "web.placeholder", "web.jobs", "web.balance",
                             "web.balance_button", "web.help", "web.feed", "web.attach", "web.access_prompt",
                             "web.access_button")}
        texts.update({k: html.escape(str(v)) for k, v in values.items()})
        content = string.Template((STATIC / name).read_text(encoding="utf-8")).substitute(texts)
        text = string.Template((STATIC / "page.html").read_text(encoding="utf-8")).substitute(
            texts, lang=lang, content=content)
        return web.Response(text=text, content_type="text/html", status=status,
                            headers={**SECURITY, "Content-Security-Policy": PAGE_CSP,
                                     "Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ("page.js", "page.css"):
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers=SECURITY)

    # --- live news ---------------------------------------------------------------------
    async def events(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        """Messages as they are written or edited (by this instance or any other: each turn
        reads the database), and the balance whenever it changes."""
        response = web.StreamResponse(headers={**SECURITY, "Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        seen = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
        rev = int(seen) if seen.isdigit() else 0
        balance, quiet = None, 0.0
        while not self.closing.is_set():
            messages = await self.pages.since(visit.chat, rev)
            now = await self.pages.balance(visit.chat)
            if messages or now != balance:
                rev = max([rev, *(m["rev"] for m in messages)])
                balance, quiet = now, 0.0
                news = json.dumps({"messages": messages, "balance": now}, ensure_ascii=False)
                await response.write(f"id: {rev}\ndata: {news}\n\n".encode())
            elif quiet >= KEEPALIVE_SECONDS:
                await response.write(b": still here\n\n")
                quiet = 0.0
            await self.pages.wait(visit.chat, POLL_SECONDS)
            quiet += POLL_SECONDS
        return response

    # --- what the person does ----------------------------------------------------------
    async def upload(self, request: web.Request, visit: Visit) -> web.Response:
        """A video (or photo) streamed to disk under WEB_MAX_UPLOAD_MB, then into the studio."""
        limit_mb = self.settings.web_max_upload_mb
        at = request.query.get("at", "")[:64].strip()
        name = Path(request.query.get("name", "")[:120]).name
        suffix = Path(name).suffix.lower()
        photo = request.content_type.startswith("image/")
        mine = await self.pages.add(visit.chat, {"text": " · ".join(filter(None, ("📎 " + name, at)))},
                                    mine=True)
        path = self.port.temp_file(suffix if _SUFFIX.match(suffix) else ".jpg" if photo else ".mp4")
        try:
            size = await _receive(request, path, limit_mb * MB)
        except TimeoutError:  # the browser stopped sending: nobody is waiting for an answer
            path.unlink(missing_ok=True)
            return answer([], 408)
        if size is None:
            path.unlink(missing_ok=True)
            await self.pages.add(visit.chat, {"text": t(visit.lang, "web.too_large", limit_mb=limit_mb)})
            return answer([], 413)
        reply = await self.port.media(replace(visit.ctx, message_id=mine), path, at, photo=photo)
        return answer(await self.renderer.render(visit.chat, reply))

    async def say(self, request: web.Request, visit: Visit) -> web.Response:
        data = await request.json()
        text = str(data.get("text", ""))[:4000]
        session = str(data.get("session") or "") or None
        mine = await self.pages.add(visit.chat, {"text": text}, mine=True)
        reply = await self.port.text(replace(visit.ctx, message_id=mine), text, session)
        return answer(await self.renderer.render(visit.chat, reply))

    async def press(self, request: web.Request, visit: Visit) -> web.Response:
        """Only a button the studio put on this person's own page can be pressed."""
        data = await request.json()
        message_id, action = str(data.get("message", "")), str(data.get("data", ""))
        body = await self.pages.get(visit.chat, message_id)
        if body is None or action not in {b["data"] for row in body.get("rows", []) for b in row}:
            return answer([t(visit.lang, "error.not_your_session")], 403)
        reply = await self.port.press(replace(visit.ctx, message_id=message_id), action)
        return answer(await self.renderer.render(visit.chat, reply))

    async def account(self, request: web.Request, visit: Visit) -> web.Response:
        data = await request.json()
        reply = await self.port.account_answer(visit.ctx, str(data.get("what", "")),
                                               str(data.get("code", "")))
        return answer(await self.renderer.render(visit.chat, reply))

    async def media(self, request: web.Request, visit: Visit) -> web.StreamResponse:
        """The owner's media by opaque id, with Range support; anyone else gets a 404."""
        path = await self.pages.media_path(visit.chat, request.match_info["id"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound(headers=SECURITY)
        return web.FileResponse(path, headers={**SECURITY, "Content-Security-Policy": MEDIA_CSP,
                                               "Cache-Control": "private, max-age=3600"})
