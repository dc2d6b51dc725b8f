"""Local CPU work is served in turn across users: a flood waits behind itself."""

from __future__ import annotations

import asyncio

from core.media.slots import FairSlots, work_owner


async def test_a_flooding_user_does_not_starve_the_next_one():
    slots = FairSlots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def work(owner: str, name: str) -> None:
        work_owner.set(owner)
        async with slots.slot():
            order.append(name)
            await gate.wait()

    flood = [asyncio.create_task(work("ann", f"ann{i}")) for i in range(5)]
    await asyncio.sleep(0)
    late = asyncio.create_task(work("bob", "bob"))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*flood, late)
    assert order[:3] == ["ann0", "ann1", "bob"]  # bob is next in turn, not sixth


async def test_a_cancelled_waiter_gives_up_its_place_and_slots_are_not_lost():
    slots = FairSlots(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert slots.waiting == 1
    waiter.cancel()
    await asyncio.sleep(0)
    assert slots.waiting == 0
    release.set()
    await holder
    async with asyncio.timeout(1):
        async with slots.slot("b"):
            pass
