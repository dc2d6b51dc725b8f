"""`python -m bot worker`: a job worker only (PostgreSQL mode). It runs jobs from the
shared queue and delivers their results over the platforms' REST APIs; no chat adapter."""

from __future__ import annotations

import argparse
from typing import Any

from core.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker", help="run jobs from the shared PostgreSQL queue (no chat adapters)"
    )
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run_bot

    await run_bot(settings, adapters=False, worker=True)
    return 0
