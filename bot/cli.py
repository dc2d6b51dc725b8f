"""`python -m bot …`: the command line (SPEC §8).

Each command lives in `bot/commands/<name>.py` with `register(subparsers)`,
which adds its parser and sets `handler` (an async function of the parsed
arguments and the settings, returning an exit code).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.commands import credits, media, migrate, posts, render, run, templates, worker
from core.errors import LokizError
from core.settings import load_settings

COMMANDS = (run, worker, media, render, templates, credits, migrate, posts)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop where it is installed (a dependency off Windows): the same
    asyncio, at less CPU for each socket round trip, and an update is mostly those (the
    webhook, Redis, PostgreSQL, the Bot API). The standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="LOKIZ: turn any video into an AI remix, on Telegram and Discord.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        settings = load_settings()
        from bot.logging import setup_logging

        setup_logging(settings)
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            return runner.run(args.handler(args, settings))
    except LokizError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
