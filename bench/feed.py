"""/feed and /top of a hot chat, on SQLite and PostgreSQL, over a big social graph.

    python bench/feed.py                 # both stores
    python bench/feed.py --store sqlite

Builds 100,000 posts over 1,000 chats (one hot chat holds 20,000 of them), made over
the last 60 days, and 1,000,000 likes from each chat's members (some of them self-likes),
bulk-loaded and recounted (`LikeRows.recount`). Then answers, through `core.social.Posts`
(the calls the bot makes), the first /feed page, a later /feed page and /top of the hot
chat, repeated, and prints each one's median and p95 (target: median < 20 ms), and
what the first /top of a day costs (it rebuilds the chat's 30-day window).
PostgreSQL runs in a throwaway database (`lokiz_bench_<random>`, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import database_url  # noqa: E402
from core.social import Posts  # noqa: E402
from core.storage import open_database  # noqa: E402

NOW = 1_800_000_000.0
DAY = 86400.0
PLATFORM = "telegram"
HOT_CHAT = "-1000"
TARGET_MS = 20.0


def chat_name(index: int) -> str:
    return HOT_CHAT if index == 0 else str(-1001 - index)


def build(posts: int, chats: int, hot: int, likes: int, users: int, seed: int = 14) -> tuple[
    list[tuple[Any, ...]], list[list[int]]
]:
    """Post rows (owner as an index into users) and, per post, the likers' indexes."""
    rng = random.Random(seed)
    per_chat = [hot] + [(posts - hot) // (chats - 1)] * (chats - 1)
    per_chat[-1] += posts - sum(per_chat)
    members = [2000] + [100] * (chats - 1)  # the hot chat is big, the others are small
    rows: list[tuple[Any, ...]] = []
    likers: list[list[int]] = []
    mean = likes / posts
    for chat, count in enumerate(per_chat):
        base = (chat * 1009) % users
        size = members[chat]
        for _ in range(count):
            owner = (base + rng.randrange(size)) % users
            created = NOW - rng.random() * 60 * DAY
            n = min(size - 1, int(rng.expovariate(1 / mean)))  # a few posts get most likes
            first = rng.randrange(size)
            # members at a step coprime with the chat's size: n distinct people
            likers.append([(base + (first + k * 7919) % size) % users for k in range(n)])
            rows.append((len(rows), chat_name(chat), owner, created))
    # exactly `likes` in all: top up (or trim) the busiest posts of the small chats
    total = sum(map(len, likers))
    index = len(likers) - 1
    while total != likes:
        chat_size = 2000 if rows[index][1] == HOT_CHAT else 100
        have = likers[index]
        if total < likes and len(have) < chat_size - 1:
            base = (have[0] if have else rows[index][2]) % users
            taken = set(have)
            for k in range(chat_size):
                candidate = (base + k) % users
                if candidate not in taken:
                    have.append(candidate)
                    total += 1
                    break
        elif total > likes and have:
            have.pop()
            total -= 1
        index = index - 1 if index > 0 else len(likers) - 1
    return rows, likers


async def load(url: str, args: argparse.Namespace) -> float:
    started = time.perf_counter()
    rows, likers = build(args.posts, args.chats, args.hot, args.likes, args.users)
    db = await open_database(url)
    try:
        async with db.transaction() as uow:
            await uow.bulk.insert(
                "users", ("platform", "platform_user_id", "display_name", "username",
                          "created_at", "seen_at"),
                [(PLATFORM, str(i), f"Person {i}", f"p{i}", NOW, NOW) for i in range(args.users)],
            )
            user_ids = await uow.bulk.ids("users", "platform_user_id")
            await uow.bulk.insert(
                "posts", ("job_id", "platform", "chat_id", "owner_id", "created_at", "file_id",
                          "message_id", "search_text"),
                [(f"job{n}", PLATFORM, chat, user_ids[str(owner)], created, f"f{n}", str(n), "")
                 for n, chat, owner, created in rows],
            )
            post_ids = await uow.bulk.ids("posts", "job_id")
            like_rows = []
            for (n, _, _, created), people in zip(rows, likers, strict=True):
                post_id = post_ids[f"job{n}"]
                for k, person in enumerate(people):
                    liked_at = min(NOW, created + (k + 1) * 600.0)
                    like_rows.append((post_id, user_ids[str(person)], liked_at, int(liked_at // DAY)))
            inserted = time.perf_counter()
            await uow.bulk.insert("post_likes", ("post_id", "user_id", "liked_at", "day"), like_rows)
            liked = time.perf_counter()
            await uow.likes.recount()
            print(f"  posts {inserted - started:.1f}s, likes {liked - inserted:.1f}s,"
                  f" recount {time.perf_counter() - liked:.1f}s")
        async with db.read() as uow:
            await uow.bulk.settle()
    finally:
        await db.close()
    return time.perf_counter() - started


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, Any]:
    result = await call()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], result


async def bench(store: str, args: argparse.Namespace) -> int:
    async with database_url(store, args.postgres) as url:
        seconds = await load(url, args)
        print(f"[{store}] loaded {args.posts:,} posts over {args.chats:,} chats "
              f"({args.hot:,} in the hot chat) and {args.likes:,} likes in {seconds:.1f}s")
        db = await open_database(url)
        failed = 0
        try:
            posts = Posts(db, clock=lambda: NOW)
            checks: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("/feed page 1", lambda: posts.feed(PLATFORM, HOT_CHAT, 0)),
                ("/feed page 20", lambda: posts.feed(PLATFORM, HOT_CHAT, 19)),
                ("/top", lambda: posts.top(PLATFORM, HOT_CHAT)),
            ]
            for name, call in checks:
                median, p95, result = await timed(call, args.repeat)
                ok = median < TARGET_MS
                failed |= not ok
                shown = len(result.posts) if hasattr(result, "posts") else len(result)
                print(f"[{store}] {name} of the hot chat: median {median:.2f} ms, p95 {p95:.2f} ms"
                      f" over {args.repeat} ({shown} shown; target < {TARGET_MS:g} ms"
                      f" {'OK' if ok else 'MISSED'})")
            # The first /top of each day sums the chat's last 30 days into its window.
            rebuilds = []
            for day in range(1, 11):
                later = Posts(db, clock=lambda day=day: NOW + day * DAY)
                start = time.perf_counter()
                await later.top(PLATFORM, HOT_CHAT)
                rebuilds.append((time.perf_counter() - start) * 1000)
            print(f"[{store}] first /top of a day (window rebuilt): median"
                  f" {statistics.median(rebuilds):.2f} ms over {len(rebuilds)} days")
        finally:
            await db.close()
        return int(failed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=1_000)
    parser.add_argument("--hot", type=int, default=20_000)
    parser.add_argument("--likes", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server to create the throwaway database on",
    )
    args = parser.parse_args()
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    failed = 0
    for store in stores:
        failed |= asyncio.run(bench(store, args))
    return failed


if __name__ == "__main__":
    sys.exit(main())
