"""A platform's answer deadline: do something "late" if the core has not answered in time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class Deadline:
    """`start` arms it; `settle` disarms it before the answer is rendered and says
    whether it fired (then the late action has run, e.g. a press answered empty)."""

    def __init__(self, seconds: float, on_late: Callable[[], Awaitable[None]]) -> None:
        self.seconds = seconds
        self.on_late = on_late
        self._task: asyncio.Task[None] | None = None
        self._fired = False

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._wait())

    async def _wait(self) -> None:
        await asyncio.sleep(self.seconds)
        self._fired = True  # from here on it is not cancelled: the late action completes
        await self.on_late()

    async def settle(self) -> bool:
        task = self._task
        if task is None:
            return False
        if not self._fired:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return self._fired
