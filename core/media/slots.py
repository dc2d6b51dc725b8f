"""A fair bound on local CPU work: slots are handed out round-robin across owners.

The owner is whoever the current task works for (`work_owner`, a context
variable the studio sets per update), so a user who floods the bot with videos
waits behind their own work while others are served in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

work_owner: contextvars.ContextVar[str] = contextvars.ContextVar("work_owner", default="")


class FairSlots:
    """Like a semaphore of `size`, but waiters are served one owner at a time, in turn."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @contextlib.asynccontextmanager
    async def slot(self, owner: str | None = None) -> AsyncIterator[None]:
        owner = work_owner.get() if owner is None else owner
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(owner, deque()).append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # the slot came just as we were cancelled: pass it on
                else:
                    self._forget(owner, future)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            owner, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            del self._waiting[owner]
            if queue:
                self._waiting[owner] = queue  # to the back: the next owner goes first
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def _forget(self, owner: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[owner]
