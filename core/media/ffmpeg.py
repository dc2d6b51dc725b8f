"""Running the ffmpeg binary, and the bound on local CPU work.

ffmpeg always runs from an absolute path (FFMPEG_BINARY, else the binary in the
imageio-ffmpeg wheel): console wrappers found on PATH can swallow exit codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python

from core.errors import ConfigError, MediaError, MediaTimeout
from core.media.pool import set_pool_size
from core.media.slots import FairSlots

_configured_binary: Path | None = None
_cpu_slots: int = max(1, os.cpu_count() or 1)
_max_pixels: int = 16_777_216  # MAX_PIXELS: 4096×4096
_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FairSlots] = (
    weakref.WeakKeyDictionary()
)


def configure(
    *,
    ffmpeg_binary: Path | None = None,
    cpu_slots: int | None = None,
    max_pixels: int | None = None,
) -> None:
    """Set the ffmpeg binary (None: the bundled one), the CPU slots and the pixel cap."""
    global _configured_binary, _cpu_slots, _max_pixels
    if max_pixels is not None:
        _max_pixels = max_pixels
    if ffmpeg_binary is not None:
        ffmpeg_path(ffmpeg_binary)  # fail now, not on the first video
    _configured_binary = ffmpeg_binary
    if cpu_slots is not None:
        _cpu_slots = max(1, cpu_slots)
        _semaphores.clear()
        set_pool_size(_cpu_slots)


def max_pixels() -> int:
    """The largest accepted frame or photo, in pixels (MAX_PIXELS)."""
    return _max_pixels


@cache
def _bundled_ffmpeg() -> str:
    import imageio_ffmpeg

    try:
        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise ConfigError(f"FFMPEG_BINARY: no ffmpeg binary found ({exc})") from None
    if not os.path.isabs(exe):
        # imageio-ffmpeg fell back to PATH: refuse, as its exit codes cannot be trusted
        raise ConfigError("FFMPEG_BINARY: set it to the absolute path of an ffmpeg binary")
    return exe


def ffmpeg_path(configured: Path | None = None) -> str:
    """The absolute path of the ffmpeg binary to run."""
    binary = configured if configured is not None else _configured_binary
    if binary is None:
        return _bundled_ffmpeg()
    if not binary.is_absolute():
        raise ConfigError(f"FFMPEG_BINARY: must be an absolute path (got {str(binary)!r})")
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ConfigError(f"FFMPEG_BINARY: {binary} is not an executable file")
    return str(binary)


def _semaphore() -> FairSlots:
    loop = asyncio.get_running_loop()
    slots = _semaphores.get(loop)
    if slots is None:
        slots = _semaphores[loop] = FairSlots(_cpu_slots)
    return slots


@contextlib.asynccontextmanager
async def cpu_slot() -> AsyncIterator[None]:
    """Hold one of the CPU slots (about one per core) for a piece of heavy media work.

    Slots go round-robin across the users the work is for (see `core.media.slots`).
    Never nest two: every public media operation takes exactly one at a time.
    """
    async with _semaphore().slot():
        yield


_ADDRESS = re.compile(r"\[(\w+) @ 0x[0-9a-f]+\]\s*")


def reduce_stderr(stderr: str, limit: int = 200) -> str:
    """The last meaningful lines of ffmpeg's stderr, short enough for a log line."""
    lines = [_ADDRESS.sub(r"\1: ", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Last message repeated",))]
    reason = " / ".join(lines[-2:]) or "ffmpeg failed without a message"
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


async def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def run_ffmpeg(
    args: Sequence[str | os.PathLike[str]],
    *,
    timeout: float,
    binary: Path | None = None,
    on_start: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> None:
    """Run ffmpeg with `args` (no shell); kill it on timeout or cancellation.

    Raises `MediaTimeout` after `timeout` seconds and `MediaError` (with a short
    reason from stderr) when ffmpeg exits non-zero.
    """
    command = [ffmpeg_path(binary), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    command.extend(str(arg) for arg in args)
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        on_start(process)
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate()
    except TimeoutError:
        await _kill(process)
        raise MediaTimeout(f"ffmpeg took longer than {timeout:g} s", seconds=timeout) from None
    except BaseException:
        # cancelled (or anything else): never leave ffmpeg running behind us
        await asyncio.shield(_kill(process))
        raise
    if process.returncode != 0:
        reason = reduce_stderr(stderr.decode("utf-8", "replace"))
        raise MediaError(f"ffmpeg failed: {reason}", reason=reason)


async def run_graph(output: Any, *, timeout: float, binary: Path | None = None) -> None:
    """Run a command line built with ffmpeg-python (`ffmpeg.input(...).output(...)`).

    Only its argument list is used: it runs through `run_ffmpeg` (no shell, timeout, kill).
    """
    args: list[str] = ffmpeg_python.compile(output, cmd="ffmpeg")[1:]
    await run_ffmpeg(args, timeout=timeout, binary=binary)
