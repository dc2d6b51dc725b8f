"""`python -m bot templates`: list the template catalogue."""

from __future__ import annotations

import argparse
from typing import Any

from core.catalogue import TemplateCatalogue
from core.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("templates", help="list the template catalogue")
    parser.add_argument("--lang", choices=("en", "ko"), default="en")
    parser.set_defaults(handler=handle)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    catalogue = TemplateCatalogue.load(settings.templates_file)
    width = max(len(template.id) for template in catalogue)
    for template in catalogue:
        options = ", ".join(f"{k}={v}" for k, v in template.options.items())
        print(f"{template.id:<{width}}  {template.text('name', args.lang)} — "
              f"{template.text('description', args.lang)}  [{options}; {settings.price_template} credits]")
    return 0
