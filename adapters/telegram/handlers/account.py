"""/start, /help, /balance, /jobs, /job ID, /lang."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from adapters.telegram.render import Renderer
from core.desk import AccountAsked, ChatContext, Desk, Event, LanguageChosen, Started, Unusable


def router() -> Router:
    area = Router(name="account")

    @area.message(CommandStart())
    async def start(message: Message, ctx: ChatContext, desk: Desk, renderer: Renderer) -> None:
        await desk.serve(Started(ctx), renderer.outlet(ctx))

    @area.message(Command("help", "balance", "jobs"))
    async def account(message: Message, command: CommandObject, ctx: ChatContext, desk: Desk,
                      renderer: Renderer) -> None:
        await desk.serve(AccountAsked(ctx, command.command.lower()), renderer.outlet(ctx))

    @area.message(Command("job"))
    async def job(message: Message, command: CommandObject, ctx: ChatContext, desk: Desk,
                  renderer: Renderer) -> None:
        words = (command.args or "").split()
        event: Event = AccountAsked(ctx, "job", words[0]) if words else Unusable(ctx, "telegram.job_usage")
        await desk.serve(event, renderer.outlet(ctx))

    @area.message(Command("lang"))
    async def lang(message: Message, command: CommandObject, ctx: ChatContext, desk: Desk,
                   renderer: Renderer) -> None:
        # Without an argument the Desk answers with the English / 한국어 buttons.
        await desk.serve(LanguageChosen(ctx, (command.args or "").strip().lower()), renderer.outlet(ctx))

    return area
