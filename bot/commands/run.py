"""`python -m bot` / `python -m bot run`: start the adapters, the job engine and HTTP.

`--no-worker` (PostgreSQL mode) leaves the jobs to `python -m bot worker` processes."""

from __future__ import annotations

import argparse
from typing import Any

from core.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run", help="start every adapter that has a token (the web studio when there is none), the job engine and the HTTP server"
    )
    parser.add_argument(
        "--no-worker", action="store_true",
        help="adapters only: jobs run in `python -m bot worker` processes (needs PostgreSQL)",
    )
    parser.set_defaults(handler=handle, no_worker=False)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import run_bot

    await run_bot(settings, adapters=True, worker=not args.no_worker)
    return 0
