"""Button presses: every press goes to the Desk, which unpacks it (and refuses forgeries)."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from adapters.telegram.render import Renderer
from core.desk import ChatContext, Desk, Pressed


def router() -> Router:
    area = Router(name="callbacks")

    @area.callback_query()
    async def press(query: CallbackQuery, ctx: ChatContext, desk: Desk, renderer: Renderer,
                    press_answered: bool = False) -> None:
        # press_answered: it waited for Redis (adapters.telegram.outage) and was answered then
        await desk.serve(Pressed(ctx, query.data), renderer.outlet(ctx, query, answered=press_answered))

    return area
