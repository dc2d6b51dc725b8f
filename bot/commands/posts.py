"""`python -m bot posts delete|show ID`: an operator takes a post out of every list."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from core.settings import Settings
from core.social import Deleted, Posts
from core.storage import open_database


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "posts", help="show a post or delete it (out of the feed, /top and inline results)"
    )
    parser.add_argument("action", choices=("delete", "show"))
    parser.add_argument("post_id", metavar="ID", type=_post_id, help="the post number")
    parser.set_defaults(handler=handle)


def _post_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 15 or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a post number")
    return int(text)


async def handle(args: argparse.Namespace, settings: Settings) -> int:
    db = await open_database(settings.database_url)
    try:
        posts = Posts(db, post_ttl_days=settings.post_ttl_days)
        if args.action == "show":
            chain = await posts.chain(args.post_id)
            if not chain:
                print(f"post {args.post_id}: no such post")
                return 1
            for post in chain:
                when = dt.datetime.fromtimestamp(post.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
                state = " (deleted)" if post.deleted else ""
                print(f"post {post.id}{state}: generation {post.generation}, job {post.job_id},"
                      f" {post.platform} chat {post.chat_id}, by {post.owner_mention},"
                      f" {when}, {post.likes} likes")
            return 0
        outcome = await posts.delete_as_operator(args.post_id)
        if outcome is Deleted.NOT_FOUND:
            print(f"post {args.post_id}: no such post")
            return 1
        if outcome is Deleted.ALREADY:
            print(f"post {args.post_id} was already deleted")
        else:
            print(f"post {args.post_id} deleted: out of the feed, /top and inline results")
        return 0
    finally:
        await db.close()
