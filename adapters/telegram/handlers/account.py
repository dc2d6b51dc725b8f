"""/start, /help, /balance, /jobs, /job ID, /lang."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from adapters.telegram.handlers.common import lang_of
from adapters.telegram.render import Renderer
from core.i18n import t
from core.screens import Screen
from core.studio.account import Account
from core.studio.replies import ChatContext
from core.studio.studio import Studio

if TYPE_CHECKING:
    from bot.app import Services


def router() -> Router:
    area = Router(name="account")

    @area.message(CommandStart())
    async def start(message: Message, ctx: ChatContext, studio: Studio, renderer: Renderer) -> None:
        await renderer.render(await studio.start(ctx), ctx)

    @area.message(Command("help"))
    async def help_(message: Message, ctx: ChatContext, account: Account, renderer: Renderer) -> None:
        await renderer.render(await account.help(ctx), ctx)

    @area.message(Command("balance"))
    async def balance(message: Message, ctx: ChatContext, account: Account, renderer: Renderer) -> None:
        await renderer.render(await account.balance(ctx), ctx)

    @area.message(Command("jobs"))
    async def jobs(message: Message, ctx: ChatContext, account: Account, renderer: Renderer) -> None:
        await renderer.render(await account.jobs_list(ctx), ctx)

    @area.message(Command("job"))
    async def job(
        message: Message, command: CommandObject, ctx: ChatContext, account: Account,
        renderer: Renderer, services: Services,
    ) -> None:
        job_id = (command.args or "").strip()
        if not job_id:
            lang = await lang_of(services, ctx)
            await renderer.send(ctx, Screen(t(lang, "telegram.job_usage")), reply_to=ctx.message_id)
            return
        await renderer.render(await account.job(ctx, job_id.split()[0]), ctx)

    @area.message(Command("lang"))
    async def lang(
        message: Message, command: CommandObject, ctx: ChatContext, studio: Studio, renderer: Renderer
    ) -> None:
        # Without an argument the studio answers with the English / 한국어 buttons.
        await renderer.render(await studio.set_language(ctx, (command.args or "").strip().lower()), ctx)

    return area
