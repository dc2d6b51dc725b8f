"""`python -m bot` / `python -m bot run`: start the adapters, the job engine and HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from core.errors import ConfigError
from core.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start every adapter that has a token, the job engine and the HTTP server"
    )
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    if settings.telegram_bot_token is None and settings.discord_bot_token is None:
        raise ConfigError(
            "no platform token: set TELEGRAM_BOT_TOKEN and/or DISCORD_BOT_TOKEN "
            "(in .env or the environment), then run python -m bot again"
        )
    from bot.app import run_bot

    await run_bot(settings)
    return 0
