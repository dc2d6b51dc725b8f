"""Concurrent charge/refund throughput of the credit ledger on SQLite.

Many asyncio tasks charge and refund for many users at once; afterwards every
balance must equal its ledger sum and none may be negative. Prints ops/s and
the ratio against a baseline of the same number of bare single-row UPDATE
transactions on the same database, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.credits import CreditLedger  # noqa: E402
from core.errors import InsufficientCredits  # noqa: E402
from core.storage import open_database  # noqa: E402
from core.users import UserDirectory  # noqa: E402


async def bench(users: int, ops: int, tasks: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=10_000)
        people = [(await ledger.ensure_user("telegram", str(i)))[0] for i in range(users)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(ops):
            queue.put_nowait(i)
        done = refused = 0

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

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        elapsed = time.perf_counter() - start

        # Baseline: the same number of bare one-statement transactions.
        start = time.perf_counter()
        sem = asyncio.Semaphore(tasks)

        async def bare(i: int) -> None:
            async with sem, db.transaction() as tx:
                await tx.execute("UPDATE users SET seen_at = ? WHERE id = ?", (i, people[i % users].id))

        await asyncio.gather(*(bare(i) for i in range(ops)))
        baseline = time.perf_counter() - start

        broken = 0
        for user in people:
            balance = await ledger.balance(user.id)
            if balance < 0 or balance != await ledger.ledger_sum(user.id):
                broken += 1
        await db.close()

    rate = done / elapsed
    print(f"ledger: {done} ops by {tasks} tasks over {users} users in {elapsed:.2f}s")
    print(f"ledger ops/s: {rate:,.0f} (target >= 2,000)")
    print(f"bare one-statement transactions/s: {ops / baseline:,.0f}")
    print(f"ratio ledger/bare: {rate / (ops / baseline):.2f}")
    print(f"invariant: {'OK' if not broken else f'BROKEN for {broken} users'} ({refused} refusals)")
    return 1 if broken else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--ops", type=int, default=6000)
    parser.add_argument("--tasks", type=int, default=500)
    args = parser.parse_args()
    return asyncio.run(bench(args.users, args.ops, args.tasks))


if __name__ == "__main__":
    sys.exit(main())
