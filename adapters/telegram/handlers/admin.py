"""Admin commands (SPEC §2 item 11): /grant /revoke /credits /stats, refused for non-admins."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from adapters.telegram.render import Renderer
from core.desk import AdminCommand, ChatContext, Desk, Target

COMMANDS = ("grant", "revoke", "credits", "stats")


def replied_target(message: Message, bot: Bot) -> Target | None:
    """The author of the message an admin command replies to (not the bot itself)."""
    replied = message.reply_to_message
    author = replied.from_user if replied is not None else None
    if author is None or author.is_bot or author.id == bot.id:
        return None
    return Target(str(author.id), author.full_name, author.username)


def router() -> Router:
    area = Router(name="admin")

    @area.message(Command(*COMMANDS))
    async def admin_command(message: Message, command: CommandObject, bot: Bot, ctx: ChatContext,
                            desk: Desk, renderer: Renderer) -> None:
        event = AdminCommand(ctx, command.command.lower(), tuple((command.args or "").split()),
                             replied_target(message, bot))
        await desk.serve(event, renderer.outlet(ctx))

    return area
