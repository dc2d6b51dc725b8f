"""The loop of one media worker process: run `core.media` functions by name, answer with pickles.

Started by `core.media.pool` as `python -m core.media.worker`. Requests and answers
are length-prefixed pickles on stdin/stdout; anything printed goes to stderr.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import struct
import sys
from typing import IO, Any

HEADER = struct.Struct("!I")
ALLOWED_PREFIX = "core.media."


def read_message(stream: IO[bytes]) -> bytes | None:
    """One length-prefixed message, or None at end of stream."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    data = stream.read(length)
    return data if len(data) == length else None


def write_message(stream: IO[bytes], data: bytes) -> None:
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def _run(module: str, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    if not module.startswith(ALLOWED_PREFIX):
        return "error", RuntimeError(f"{module} is not a media module")
    try:
        function = getattr(importlib.import_module(module), name)
        return "ok", function(*args)
    except Exception as exc:  # every failure goes back to the caller, typed
        return "error", exc


def _answer(result: tuple[str, Any]) -> bytes:
    try:
        return pickle.dumps(result)
    except Exception as exc:  # an unpicklable error: send its text
        from core.errors import MediaError

        value = result[1]
        return pickle.dumps(("error", MediaError(f"{type(value).__name__}: {value} ({exc})")))


_PRELOAD = ("core.media.probe", "core.media.capture", "core.media.sheet", "core.media.fit",
            "core.media.edit")


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker if the bot process dies (no orphan decoding)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    """Serve requests until stdin closes (the parent exited or let this worker go)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    _die_with_parent()
    for module in _PRELOAD:  # ready before the first request, not during it
        importlib.import_module(module)
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the answer stream
    while (message := read_message(requests)) is not None:
        module, name, args = pickle.loads(message)
        write_message(answers, _answer(_run(module, name, args)))


if __name__ == "__main__":
    main()
