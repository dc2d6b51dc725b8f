"""`python -m bot credits grant|revoke|show PLATFORM:ID [AMOUNT] [--reason R]`."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from core.credits import CreditLedger
from core.errors import InvalidAmount
from core.settings import Settings
from core.storage import open_database
from core.users import UserDirectory, is_whole_number, parse_user_ref


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("credits", help="grant, revoke or show a user's credits")
    parser.add_argument("action", choices=("grant", "revoke", "show"))
    parser.add_argument("target", metavar="PLATFORM:ID", help="e.g. telegram:42")
    parser.add_argument("amount", nargs="?", type=_amount, help="whole credits (grant/revoke)")
    parser.add_argument("--reason", default="", help="why (kept in the ledger)")
    parser.set_defaults(handler=handle)


def _amount(text: str) -> int:
    if not is_whole_number(text) or len(text) > 12 or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    platform, platform_user_id = parse_user_ref(args.target)
    if args.action != "show" and args.amount is None:
        raise InvalidAmount(f"credits {args.action} needs an AMOUNT")
    db = await open_database(settings.database_url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=settings.starter_credits,
                              platform_starter={"web": settings.web_starter})
        user = await ledger.users.find(platform, platform_user_id)
        if user is None:
            if args.action == "show":
                print(f"{args.target}: not seen yet; balance 0")
                return 0
            # Granting to someone before their first message: no starter credits twice.
            user, _ = await ledger.ensure_user(platform, platform_user_id, contact=False)
        if args.action == "grant":
            await ledger.grant(user.id, args.amount, actor="cli", reason=args.reason)
            print(f"granted {args.amount} to {user.ref}; balance {await ledger.balance(user.id)}")
        elif args.action == "revoke":
            await ledger.revoke(user.id, args.amount, actor="cli", reason=args.reason)
            print(f"revoked {args.amount} from {user.ref}; balance {await ledger.balance(user.id)}")
        else:
            print(f"{user.ref} {user.display_name}".rstrip() + f": balance {await ledger.balance(user.id)}")
            for item in await ledger.history(user.id, limit=20):
                when = dt.datetime.fromtimestamp(item.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
                job = f" job {item.job_id}" if item.job_id else ""
                print(f"  {when}  {item.delta:+d}  {item.kind:<7} by {item.actor}{job}  {item.reason}")
        return 0
    finally:
        await db.close()
