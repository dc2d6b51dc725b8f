"""Media decoding runs in killable worker processes: a timeout really stops the work."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import core.media.capture as capture_module
from core.errors import CorruptVideo, MediaTimeout
from core.media import capture_frame, configure, probe
from core.media.pool import media_pool, shutdown_pool
from core.media.slots import work_owner
from tests.media_factory import BadFiles

MEDIA_CODE = os.sep + os.path.join("core", "media") + os.sep


def decoding_threads() -> list[str]:
    """Threads of this process that are inside media decoding code right now."""
    busy = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        walk = frame
        while walk is not None:
            name = walk.f_code.co_filename
            if MEDIA_CODE in name and not name.endswith(("pool.py", "worker.py")):
                busy.append(f"{name}:{walk.f_code.co_name}")
                break
            walk = walk.f_back
    return busy


def child_processes() -> set[int]:
    """Process ids whose parent is this test process (read from /proc)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                children.add(int(entry.name))
    return children


@pytest.fixture
def two_slots() -> Iterator[None]:
    configure(cpu_slots=2)
    yield
    configure(cpu_slots=os.cpu_count() or 1)


async def test_timed_out_decodes_stop_and_another_users_capture_still_completes(
    two_slots: None, slow_to_seek_video: Path, counter_video: Path, out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capture_module, "CAPTURE_TIMEOUT", 0.05)

    async def flood(index: int) -> None:
        work_owner.set("flooder")
        with pytest.raises(MediaTimeout):
            await capture_frame(slow_to_seek_video, 29.9, out_dir / f"flood-{index}.jpg")

    await asyncio.gather(*(flood(i) for i in range(8)))
    monkeypatch.setattr(capture_module, "CAPTURE_TIMEOUT", 60.0)
    work_owner.set("patient")
    frame = await capture_frame(counter_video, 1.0, out_dir / "patient.jpg")
    assert frame.stat().st_size > 0
    # nothing of the flood is still decoding: no thread here, no process but idle workers
    assert decoding_threads() == []
    assert media_pool().busy == 0
    for _ in range(200):  # replacements for the killed workers may still be starting
        if child_processes() <= set(media_pool().pids()):
            break
        await asyncio.sleep(0.05)
    assert child_processes() <= set(media_pool().pids())
    assert not any((out_dir / f"flood-{i}.jpg").exists() for i in range(8))


async def test_typed_errors_come_back_from_the_workers_and_workers_end_at_shutdown(
    bad_files: BadFiles, av_video: Path,
) -> None:
    with pytest.raises(CorruptVideo):
        await probe(bad_files.truncated)
    assert (await probe(av_video)).duration > 0  # the same worker goes on serving
    assert media_pool().pids()
    shutdown_pool()
    assert child_processes() == set()
