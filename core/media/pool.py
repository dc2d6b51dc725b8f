"""Media decoding in a small pool of long-lived worker processes that can be killed.

A thread cannot be stopped, so a timed-out decode in a thread keeps its core
busy. Here each call runs in a worker process; on timeout or cancellation that
worker is killed (the work really stops) and a fresh one takes its place.
The pool is started lazily, not at import, and stopped at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from core.errors import MediaError, MediaTimeout
from core.media.worker import read_message, write_message

T = TypeVar("T")
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds `core`


class WorkerGone(MediaError):
    """The worker process ended before it answered (killed, or it crashed)."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from core.media.worker import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, module: str, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        """Send one request and wait for its answer (blocking: runs in a media thread)."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        try:
            write_message(stdin, pickle.dumps((module, name, args)))
            answer = read_message(stdout)
        except (OSError, ValueError):
            answer = None
        if answer is None:
            raise WorkerGone("the media worker stopped before answering")
        try:
            return cast(tuple[str, Any], pickle.loads(answer))
        except Exception as exc:
            return "error", MediaError(f"unreadable answer from the media worker ({exc})")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


class MediaPool:
    """Up to `size` idle worker processes, and a bounded thread pool that talks to them."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        # its own threads: media work never queues behind (or blocks) the default executor
        self._threads = ThreadPoolExecutor(self.size * 2 + 1, thread_name_prefix="lokiz-media")

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise MediaError("the media workers are shut down")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    self._busy.add(worker)
                    return worker
                worker.kill()
            worker = _Worker()
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if not self._closed and worker.alive() and len(self._idle) < self.size:
                self._idle.append(worker)
                return
        worker.kill()

    def _refill(self) -> None:
        """Start one idle worker ahead of the next call (after one was killed)."""
        with self._lock:
            if self._closed or len(self._idle) + len(self._busy) >= self.size:
                return
        worker = _Worker()
        self._give_back(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._busy.discard(worker)
        if not self._closed:
            self._threads.submit(self._refill)

    def pids(self) -> list[int]:
        """Process ids of every worker alive now (idle or busy)."""
        with self._lock:
            return [w.pid for w in (*self._idle, *self._busy) if w.alive()]

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._busy)

    async def call(self, function: Callable[..., T], *args: Any, timeout: float, what: str) -> T:
        """`function(*args)` in a worker; `MediaTimeout` (worker killed) after `timeout` s.

        Errors raised by `function` (CorruptVideo, …) come back as they were raised.
        """
        loop = asyncio.get_running_loop()
        worker = await loop.run_in_executor(self._threads, self._take)
        request = (function.__module__, function.__name__, args)
        try:
            async with asyncio.timeout(timeout):
                status, value = await loop.run_in_executor(self._threads, worker.call, *request)
        except TimeoutError:
            self._discard(worker)
            raise MediaTimeout(f"{what} took too long", seconds=timeout) from None
        except BaseException:
            self._discard(worker)  # cancelled or broken: the work stops with its worker
            raise
        self._give_back(worker)
        if status == "error":
            raise value
        return cast(T, value)

    def shutdown(self) -> None:
        """Kill every worker and stop the threads (at exit, or when resized)."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
            self._busy.clear()
        for worker in workers:
            worker.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)


_pool: MediaPool | None = None
_pool_lock = threading.Lock()
_size: int = max(1, os.cpu_count() or 1)


def set_pool_size(size: int) -> None:
    """Size of the worker pool (about one per core); a running pool is replaced."""
    global _size
    _size = max(1, size)
    shutdown_pool()


def media_pool() -> MediaPool:
    """The process's worker pool, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = MediaPool(_size)
        return _pool


def shutdown_pool() -> None:
    """Kill all media workers (the next call starts new ones)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()


atexit.register(shutdown_pool)


async def in_worker(function: Callable[..., T], *args: Any, timeout: float, what: str) -> T:
    """Run a synchronous `core.media` function in a killable worker process."""
    return await media_pool().call(function, *args, timeout=timeout, what=what)
