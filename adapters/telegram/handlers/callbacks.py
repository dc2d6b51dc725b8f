"""Button presses: answered at once (an alert when the core says no), then rendered."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery

from adapters.telegram.filters import CoreButton, CorePress
from adapters.telegram.handlers.common import lang_of
from adapters.telegram.keyboards import MAX_ALERT, clip
from adapters.telegram.render import Renderer
from core.i18n import t
from core.studio.replies import ChatContext
from core.studio.studio import Studio

if TYPE_CHECKING:
    from bot.app import Services

# Telegram shows a spinner until the press is answered; past this the answer goes out
# empty and anything the core wanted to alert is said in the chat instead.
ANSWER_WITHIN = 3.0


async def answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    with contextlib.suppress(TelegramAPIError):  # too old (e.g. pressed while we restarted)
        await query.answer(clip(text, MAX_ALERT) if text else None, show_alert=alert)


def router() -> Router:
    area = Router(name="callbacks")

    @area.callback_query(CoreButton())
    async def press(
        query: CallbackQuery, press: CorePress, ctx: ChatContext, studio: Studio, renderer: Renderer
    ) -> None:
        work = asyncio.ensure_future(studio.press(ctx, press.data))
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN)
        late = not done
        if late:
            await answer(query)
        reply = await work
        if not late:
            alerts = [alert.text for alert in reply.alerts]
            await answer(query, "\n".join(alerts) or None, alert=bool(alerts))
        await renderer.render(reply, ctx, skip_alerts=not late)

    @area.callback_query()
    async def forged(query: CallbackQuery, ctx: ChatContext, services: Services) -> None:
        await answer(query, t(await lang_of(services, ctx), "error.unknown_button"), alert=True)

    return area
