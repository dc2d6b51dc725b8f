"""The in-process fair scheduler: queued jobs start round-robin across users, at most
`max_concurrent` generating at once. It only decides *when*; each start is one call of
the engine's `run_job(job_id)` (the same step a cluster worker runs)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable

from core.jobs import Job


class FairQueue:
    """Queued job ids per user, served round-robin so no user starves the others."""

    def __init__(self) -> None:
        self._by_user: dict[int, deque[str]] = {}
        self._turns: deque[int] = deque()

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._by_user.values())

    def push(self, user_id: int, job_id: str) -> None:
        if user_id not in self._by_user:
            self._by_user[user_id] = deque()
            self._turns.append(user_id)
        self._by_user[user_id].append(job_id)

    def pop(self) -> tuple[int, str] | None:
        while self._turns:
            user_id = self._turns.popleft()
            jobs = self._by_user[user_id]
            job_id = jobs.popleft()
            if jobs:
                self._turns.append(user_id)
            else:
                del self._by_user[user_id]
            return user_id, job_id
        return None

    def remove(self, user_id: int, job_id: str) -> bool:
        jobs = self._by_user.get(user_id)
        if not jobs or job_id not in jobs:
            return False
        jobs.remove(job_id)
        if not jobs:
            del self._by_user[user_id]
            self._turns.remove(user_id)
        return True

    def order(self) -> list[str]:
        """Every queued job id in the order they will start."""
        lanes = [list(self._by_user[user]) for user in self._turns]
        result: list[str] = []
        depth = 0
        while True:
            row = [lane[depth] for lane in lanes if depth < len(lane)]
            if not row:
                return result
            result.extend(row)
            depth += 1

    def position(self, job_id: str) -> int | None:
        order = self.order()
        return order.index(job_id) + 1 if job_id in order else None


class FairScheduler:
    """Starts `run(job_id)` for queued jobs in fair order while generating slots are free.

    A started job holds a slot until `release(job_id)` (its generation is over: delivery
    does not count) or until its run returns.
    """

    def __init__(
        self,
        run: Callable[[str], Awaitable[object]],
        *,
        max_concurrent: int,
        show_positions: Callable[[list[tuple[Job, int]]], Awaitable[None]],
    ) -> None:
        self._run = run
        self.max_concurrent = max_concurrent
        self._show_positions = show_positions
        self.queue = FairQueue()
        self._queued: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots: set[str] = set()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._loop is not None and not self._loop.done()

    @property
    def generating(self) -> int:
        """Jobs holding a slot: started and not yet past their generation."""
        return len(self._slots)

    def __len__(self) -> int:
        return len(self.queue)

    def push(self, job: Job) -> None:
        """Queue a job once: a second push of a queued or started job changes nothing."""
        if job.id in self._queued or job.id in self._tasks:
            return
        self._queued[job.id] = job
        self.queue.push(job.user_id, job.id)
        self._wakeup.set()

    def remove(self, job: Job) -> None:
        self.queue.remove(job.user_id, job.id)
        self._queued.pop(job.id, None)

    def position(self, job_id: str) -> int | None:
        return self.queue.position(job_id)

    def start_now(self, job_id: str, *, slot: bool = True) -> None:
        """Run a job at once (recovery), holding a generating slot when `slot`."""
        if job_id in self._tasks:
            return
        if slot:
            self._slots.add(job_id)
        task = asyncio.create_task(self._run_one(job_id), name=f"job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(functools.partial(self._ended, job_id))

    def release(self, job_id: str) -> None:
        """The job's generation is over: its slot goes to the next queued job."""
        if job_id in self._slots:
            self._slots.discard(job_id)
            self._wakeup.set()

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._loop = asyncio.create_task(self._schedule(), name="job-scheduler")

    async def stop(self) -> None:
        tasks = [t for t in (self._loop, *self._tasks.values()) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run_one(self, job_id: str) -> None:
        await self._run(job_id)

    def _ended(self, job_id: str, _task: object = None) -> None:
        self._tasks.pop(job_id, None)
        self.release(job_id)

    async def _schedule(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            started = False
            while len(self._slots) < self.max_concurrent:
                picked = self.queue.pop()
                if picked is None:
                    break
                if self._queued.pop(picked[1], None) is not None:
                    self.start_now(picked[1])
                    started = True
            if started:
                await self._show_positions(self.waiting()[:100])

    def waiting(self) -> list[tuple[Job, int]]:
        """Queued jobs with their positions, first first."""
        order = [self._queued[job_id] for job_id in self.queue.order() if job_id in self._queued]
        return [(job, position) for position, job in enumerate(order, start=1)]
