"""Concurrent charge/refund throughput of the credit ledger, on SQLite and PostgreSQL.

Many asyncio tasks charge and refund for many users at once; afterwards every
balance must equal its ledger sum and none may be negative. Prints, for each
store, ops/s and the ratio against a baseline of the same number of bare
single-row UPDATE transactions on the same database, measured in the same run
(in alternating rounds, so load from elsewhere on the machine hits both alike),
and the bench process's CPU time per operation.
PostgreSQL runs in a throwaway database (`lokiz_bench_<random>`, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.credits import CreditLedger  # noqa: E402
from core.errors import InsufficientCredits  # noqa: E402
from core.storage import open_database  # noqa: E402
from core.users import UserDirectory  # noqa: E402


@contextlib.asynccontextmanager
async def database_url(store: str, server: str) -> AsyncIterator[str]:
    """A URL of a fresh database of `store`, removed afterwards."""
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    import psycopg

    name = f"lokiz_bench_{secrets.token_hex(4)}"
    admin = await psycopg.AsyncConnection.connect(server, autocommit=True)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def bench(store: str, server: str, users: int, ops: int, tasks: int, rounds: int) -> int:
    async with database_url(store, server) as url:
        db = await open_database(url)
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=10_000)
        people = [(await ledger.ensure_user("telegram", str(i)))[0] for i in range(users)]
        done = refused = 0

        async def charges(ops_range: range) -> None:
            nonlocal done, refused
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in ops_range:
                queue.put_nowait(i)

            async def worker() -> None:
                nonlocal done, refused
                while not queue.empty():
                    i = queue.get_nowait()
                    user = people[i % users]
                    try:
                        if i % 3 == 2:
                            await ledger.refund_now(f"job-{i - 1}")
                        else:
                            await ledger.charge_now(user.id, 1 + i % 7, job_id=f"job-{i}")
                    except InsufficientCredits:
                        refused += 1
                    done += 1

            await asyncio.gather(*(worker() for _ in range(tasks)))

        async def bares(ops_range: range) -> None:
            # Baseline: bare one-statement transactions, as many, by as many workers.
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in ops_range:
                queue.put_nowait(i)

            async def worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    async with db.transaction() as tx:
                        await tx.execute(
                            "UPDATE users SET seen_at = ? WHERE id = ?", (i, people[i % users].id)
                        )

            await asyncio.gather(*(worker() for _ in range(tasks)))

        # Alternating rounds, so a busy neighbour slows both sides alike.
        elapsed = baseline = 0.0
        cpu_ledger = cpu_bare = 0.0
        step = -(-ops // rounds)
        for first in range(0, ops, step):
            chunk = range(first, min(first + step, ops))
            for run, measure in ((charges, "ledger"), (bares, "bare")):
                wall, cpu = time.perf_counter(), time.process_time()
                await run(chunk)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if measure == "ledger":
                    elapsed += wall
                    cpu_ledger += cpu
                else:
                    baseline += wall
                    cpu_bare += cpu

        broken = 0
        for user in people:
            balance = await ledger.balance(user.id)
            if balance < 0 or balance != await ledger.ledger_sum(user.id):
                broken += 1
        await db.close()

    rate = done / elapsed
    target = " (target >= 2,000)" if store == "sqlite" else ""
    print(f"[{store}] ledger: {done} ops by {tasks} tasks over {users} users in {elapsed:.2f}s")
    print(f"[{store}] ledger ops/s: {rate:,.0f}{target}")
    print(f"[{store}] bare one-statement transactions/s: {ops / baseline:,.0f}")
    print(f"[{store}] ratio ledger/bare: {rate / (ops / baseline):.2f}"
          + (" (target >= 0.6)" if store == "sqlite" else ""))
    print(f"[{store}] bench process CPU per op: ledger {cpu_ledger / done * 1e6:.0f} us,"
          f" bare {cpu_bare / ops * 1e6:.0f} us")
    print(f"[{store}] invariant: {'OK' if not broken else f'BROKEN for {broken} users'}"
          f" ({refused} refusals)")
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--ops", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6, help="alternating ledger/bare rounds")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--postgres", default=os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server to create the throwaway database on",
    )
    args = parser.parse_args()
    stores = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    failed = 0
    for store in stores:
        failed |= asyncio.run(bench(store, args.postgres, args.users, args.ops, args.tasks, args.rounds))
    return failed


if __name__ == "__main__":
    sys.exit(main())
