"""Core replies and job news as messages on a browser user's page (the web's renderer
and the engine's notifier): text, a picture or clip by opaque id, buttons, a form."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from adapters.web.port import PLATFORM, StudioPort
from core.jobs import Job
from core.notify import OutputMedia, Receipt
from core.screens import Screen
from core.studio.replies import Alert, AskText, Edit, Reply, Send, SendFeed, SendMedia
from core.web_pages import WebPages

NO_LIMIT = 1 << 40  # a page plays the file as it is: nothing to fit


class PageRenderer:
    def __init__(self, pages: WebPages, port: StudioPort, media_key: Callable[[str, Path], str]) -> None:
        self.pages = pages
        self.port = port
        self.media_key = media_key  # (page, file) -> the opaque id the page fetches it by

    async def render(self, chat: str, reply: Reply) -> list[str]:
        """Write the reply onto the page; return the alerts (shown once, not kept)."""
        alerts: list[str] = []
        for out in reply.outs:
            if isinstance(out, Alert):
                alerts.append(out.text)
            elif isinstance(out, Edit):
                body = await self.body(chat, out.screen)
                await self.pages.change(chat, out.message_id,
                                        **({"rows": body["rows"]} if out.buttons_only else body))
            elif isinstance(out, SendFeed):  # a feed page: its header, then each clip
                await self.pages.add(chat, await self.body(chat, out.screen))
                for item in out.clips:
                    media = OutputMedia(item.path, "video") if item.path is not None else None
                    await self.pages.add(chat, await self.body(
                        chat, Screen(item.caption, item.buttons), media))
            elif isinstance(out, AskText):
                form = {"session": out.session_id, "label": out.label,
                        "placeholder": out.placeholder, "max": out.max_length}
                body = await self.body(chat, out.screen, form=form)
                if not (out.message_id and await self.pages.change(chat, out.message_id, **body)):
                    await self.pages.add(chat, body)
            else:
                media = out.media if isinstance(out, SendMedia) else None
                message_id = await self.pages.add(chat, await self.body(chat, out.screen, media))
                if isinstance(out, Send) and out.session_id:
                    await self.port.bind(out.session_id, message_id)
        return alerts

    async def body(self, chat: str, screen: Screen, media: OutputMedia | None = None,
                   form: dict[str, Any] | None = None) -> dict[str, Any]:
        rows = [list(row) for row in screen.buttons]
        pairs = [list(screen.select[i:i + 2]) for i in range(0, len(screen.select), 2)]
        body: dict[str, Any] = {
            "text": screen.text, "form": form,
            "rows": [[{"label": b.label, "data": b.data, "style": b.style} for b in row]
                     for row in pairs + rows],
        }
        shown: tuple[Path, str] | None = (media.path, media.kind) if media else None
        if shown is None and screen.image is not None:
            shown = (screen.image, "image")
        if shown is not None:
            media_id = await self.pages.share(chat, shown[0], self.media_key(chat, shown[0]))
            body["media"] = {"id": media_id, "kind": shown[1]}
        return body


class WebNotifier:
    platform = PLATFORM
    drops_duplicate_sends = True  # a result is written once per job, however often it is sent

    def __init__(self, renderer: PageRenderer) -> None:
        self.renderer = renderer
        self.pages = renderer.pages

    def upload_limit(self, job: Job) -> int:
        return NO_LIMIT

    async def show_status(self, job: Job, screen: Screen) -> str | None:
        body = await self.renderer.body(job.chat_id, screen)
        if job.status_message_id and await self.pages.change(job.chat_id, job.status_message_id, **body):
            return job.status_message_id
        return await self.pages.add(job.chat_id, body)

    async def edit_buttons(self, chat_id: str, message_id: str, screen: Screen) -> None:
        body = await self.renderer.body(chat_id, screen)
        await self.pages.change(chat_id, message_id, rows=body["rows"])

    async def deliver(self, job: Job, media: OutputMedia, screen: Screen) -> Receipt:
        body = await self.renderer.body(job.chat_id, screen, media)
        return Receipt(await self.pages.add(job.chat_id, body, once=f"result:{job.id}"))
