"""The credit ledger: balance = sum of entries, never negative, idempotent by key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.credits import CreditLedger
from core.errors import InsufficientCredits, InvalidAmount, KeyReused
from core.storage import open_database
from core.users import UserDirectory

pytestmark = pytest.mark.both_stores


async def test_first_contact_gets_starter_credits_once(db):
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=50)
    user, first = await ledger.ensure_user("telegram", "7", display_name="Ann")
    again, second = await ledger.ensure_user("telegram", "7", display_name="Ann")
    assert (first, second) == (True, False)
    assert user.balance == again.balance == 50
    assert [e.kind for e in await ledger.history(user.id)] == ["starter"]


async def test_first_updates_arriving_together_give_the_starter_credits_once(db, database_url):
    other = await open_database(database_url)  # a second instance on the same store
    try:
        ledgers = [CreditLedger(d, UserDirectory(d), starter_credits=50) for d in (db, other) * 3]
        met = await asyncio.gather(*(ledger.ensure_user("telegram", "9", display_name="Bo")
                                     for ledger in ledgers))
    finally:
        await other.close()
    assert sorted(first for _, first in met) == [False] * 5 + [True]  # one welcome
    [user_id] = {user.id for user, _ in met}
    assert [user.balance for user, _ in met] == [50] * 6
    assert [e.kind for e in await ledgers[0].history(user_id)] == ["starter"]
    assert await ledgers[0].balance(user_id) == await ledgers[0].ledger_sum(user_id) == 50


async def test_admin_created_user_still_gets_starter_on_first_message(db):
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=50)
    user, _ = await ledger.ensure_user("telegram", "8", contact=False)
    await ledger.grant(user.id, 100, actor="cli")
    user, first = await ledger.ensure_user("telegram", "8")
    assert first and user.balance == 150


async def test_200_concurrent_charges_against_100_leave_zero_and_100_refusals(ledger):
    user, _ = await ledger.ensure_user("telegram", "1")
    await ledger.grant(user.id, 100, actor="test")

    async def charge(i: int) -> bool:
        try:
            await ledger.charge_now(user.id, 1, job_id=f"job-{i}")
            return True
        except InsufficientCredits:
            return False

    results = await asyncio.gather(*(charge(i) for i in range(200)))
    assert results.count(True) == 100
    assert results.count(False) == 100
    assert await ledger.balance(user.id) == 0
    assert await ledger.ledger_sum(user.id) == 0


async def test_repeated_idempotency_key_charges_and_refunds_once(ledger):
    user, _ = await ledger.ensure_user("discord", "5")
    await ledger.grant(user.id, 100, actor="test")
    first = await ledger.charge_now(user.id, 20, job_id="j1")
    again = await asyncio.gather(*(ledger.charge_now(user.id, 20, job_id="j1") for _ in range(5)))
    assert all(entry.id == first.id for entry in again)
    assert await ledger.balance(user.id) == 80
    refunds = await asyncio.gather(*(ledger.refund_now("j1") for _ in range(5)))
    assert len({entry.id for entry in refunds if entry}) == 1
    assert await ledger.balance(user.id) == 100
    grant_key = "grant:admin-1:msg-9"
    await ledger.grant(user.id, 10, actor="admin", key=grant_key)
    await ledger.grant(user.id, 10, actor="admin", key=grant_key)
    assert await ledger.balance(user.id) == 110


async def test_refund_of_an_uncharged_job_gives_nothing(ledger):
    assert await ledger.refund_now("never-charged") is None


async def test_insufficient_credits_says_the_shortfall(ledger):
    user, _ = await ledger.ensure_user("telegram", "2")
    await ledger.grant(user.id, 15, actor="test")
    with pytest.raises(InsufficientCredits) as caught:
        await ledger.charge_now(user.id, 20, job_id="j")
    assert caught.value.params == {"needed": 20, "balance": 15, "shortfall": 5}
    assert await ledger.balance(user.id) == 15
    assert [e.kind for e in await ledger.history(user.id)] == ["grant"]


async def test_revoke_past_the_balance_is_refused(ledger):
    user, _ = await ledger.ensure_user("telegram", "3")
    await ledger.grant(user.id, 30, actor="test")
    with pytest.raises(InsufficientCredits):
        await ledger.revoke(user.id, 31, actor="test")
    await ledger.revoke(user.id, 30, actor="test")
    assert await ledger.balance(user.id) == 0


@pytest.mark.parametrize("amount", [0, -5, True, 10**12])
async def test_grant_rejects_nonsense_amounts(ledger, amount):
    user, _ = await ledger.ensure_user("telegram", "4")
    with pytest.raises(InvalidAmount):
        await ledger.grant(user.id, amount, actor="test")


async def test_ledger_is_append_only(db, ledger):
    user, _ = await ledger.ensure_user("telegram", "6")
    await ledger.grant(user.id, 5, actor="test")
    with pytest.raises(Exception, match="append-only"):
        async with db.transaction() as tx:
            await tx.execute("UPDATE ledger SET delta = 500")
    with pytest.raises(Exception, match="append-only"):
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM ledger")
    assert await ledger.balance(user.id) == 5


async def test_data_survives_closing_and_reopening(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    db = await open_database(url)
    ledger = CreditLedger(db, UserDirectory(db), starter_credits=50)
    user, _ = await ledger.ensure_user("telegram", "9", display_name="Bo")
    await ledger.charge_now(user.id, 20, job_id="j")
    await db.close()
    db = await open_database(url)
    try:
        ledger = CreditLedger(db, UserDirectory(db), starter_credits=50)
        again, first = await ledger.ensure_user("telegram", "9")
        assert not first
        assert again.balance == 30
        assert [e.kind for e in await ledger.history(user.id)] == ["charge", "starter"]
    finally:
        await db.close()


operations = st.lists(
    st.tuples(
        st.sampled_from(["grant", "revoke", "charge", "refund", "charge_again"]),
        st.integers(min_value=0, max_value=3),  # which user
        st.integers(min_value=1, max_value=60),  # amount
        st.integers(min_value=0, max_value=15),  # which job
    ),
    max_size=40,
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_keep_balance_equal_to_ledger_sum(tmp_path_factory, ops):
    async def scenario() -> None:
        db = await open_database(f"sqlite:///{tmp_path_factory.mktemp('h') / 'h.db'}")
        try:
            ledger = CreditLedger(db, UserDirectory(db), starter_credits=10)
            users = [(await ledger.ensure_user("telegram", str(i)))[0] for i in range(4)]
            for op, who, amount, job in ops:
                user = users[who]
                try:
                    if op == "grant":
                        await ledger.grant(user.id, amount, actor="h")
                    elif op == "revoke":
                        await ledger.revoke(user.id, amount, actor="h")
                    elif op in ("charge", "charge_again"):
                        await ledger.charge_now(user.id, amount, job_id=f"{who}-{job}")
                    else:
                        await ledger.refund_now(f"{who}-{job}")
                except (InsufficientCredits, KeyReused):  # a job charged again at another price
                    pass
                for u in users:
                    balance = await ledger.balance(u.id)
                    assert balance >= 0
                    assert balance == await ledger.ledger_sum(u.id)
            async with db.read() as tx:
                twice = await tx.fetchval(
                    "SELECT COUNT(*) FROM (SELECT job_id FROM ledger WHERE kind = 'refund'"
                    " GROUP BY job_id HAVING COUNT(*) > 1)"
                )
            assert twice == 0
        finally:
            await db.close()

    asyncio.run(scenario())
