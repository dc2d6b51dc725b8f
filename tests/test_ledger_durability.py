"""A process SIGKILLed in the middle of a stream of ledger writes leaves a consistent ledger."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.credits import CreditLedger
from core.storage import open_database
from core.users import UserDirectory

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from core.credits import CreditLedger
    from core.errors import InsufficientCredits
    from core.storage import open_database
    from core.users import UserDirectory

    async def main(url):
        db = await open_database(url)
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=100)
        users = [(await ledger.ensure_user("telegram", str(i)))[0] for i in range(5)]
        print("ready", flush=True)
        i = 0
        while True:
            async def one(i):
                user = users[i % 5]
                try:
                    await ledger.charge_now(user.id, 3, job_id=f"j{i}")
                except InsufficientCredits:
                    await ledger.grant(user.id, 50, actor="writer")
                if i % 3 == 0:
                    await ledger.refund_now(f"j{i}")
            await asyncio.gather(*(one(i + k) for k in range(20)))
            i += 20
            print(i, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.both_stores
def test_sigkill_mid_stream_leaves_consistent_ledger(database_url: str):
    url = database_url
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        # Let it write for a while (however busy the machine), then kill it without warning.
        written = 0
        while written < 100:
            line = proc.stdout.readline()
            assert line, "the writer stopped on its own"
            written = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    asyncio.run(_assert_consistent(url))


async def _assert_consistent(url: str) -> None:
    db = await open_database(url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=100)
        async with db.read() as tx:
            entries = await tx.fetchval("SELECT COUNT(*) FROM ledger")
            doubled = await tx.fetchval(
                "SELECT COUNT(*) FROM (SELECT idempotency_key FROM ledger"
                " GROUP BY idempotency_key HAVING COUNT(*) > 1) AS doubled"
            )
            orphans = await tx.fetchval(
                "SELECT COUNT(*) FROM ledger r WHERE kind = 'refund' AND NOT EXISTS"
                " (SELECT 1 FROM ledger c WHERE c.idempotency_key = 'charge:' || r.job_id)"
            )
        assert entries > 50, "the writer should have written for a while"
        assert doubled == 0 and orphans == 0
        for i in range(5):
            user = await ledger.users.find("telegram", str(i))
            assert user is not None
            assert user.balance >= 0
            assert user.balance == await ledger.ledger_sum(user.id)
    finally:
        await db.close()
