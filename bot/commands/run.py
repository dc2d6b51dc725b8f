"""`python -m bot` / `python -m bot run`: start the adapters, the job engine and HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from core.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start every adapter that has a token (the web studio when there is none), the job engine and the HTTP server"
    )
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run_bot

    await run_bot(settings)
    return 0
