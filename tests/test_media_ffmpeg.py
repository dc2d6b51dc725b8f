"""The ffmpeg runner: absolute binary, short reasons, timeouts and cancellation kill it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from core.errors import ConfigError, MediaError, MediaTimeout
from core.media import configure, cpu_slot, ffmpeg_path, run_ffmpeg
from core.media.ffmpeg import reduce_stderr

ENDLESS = ["-re", "-f", "lavfi", "-i", "nullsrc=s=64x64:r=25", "-f", "null", "-"]


def test_the_binary_is_an_absolute_path_never_a_name_on_path() -> None:
    assert os.path.isabs(ffmpeg_path())
    with pytest.raises(ConfigError, match="FFMPEG_BINARY"):
        ffmpeg_path(Path("ffmpeg"))
    with pytest.raises(ConfigError, match="FFMPEG_BINARY"):
        ffmpeg_path(Path("/nonexistent/ffmpeg"))
    assert ffmpeg_path(Path(ffmpeg_path())) == ffmpeg_path()


async def test_a_failure_comes_with_a_short_reason(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as caught:
        await run_ffmpeg(["-i", tmp_path / "missing.mp4", tmp_path / "out.mp4"], timeout=30)
    reason = caught.value.params["reason"]
    assert "missing.mp4" in reason and len(reason) <= 200
    assert "0x" not in reduce_stderr("[mov @ 0x55d1c2] moov atom not found\n")


async def test_a_timeout_kills_ffmpeg(tmp_path: Path) -> None:
    started: list[asyncio.subprocess.Process] = []
    with pytest.raises(MediaTimeout):
        await run_ffmpeg(ENDLESS, timeout=0.5, on_start=started.append)
    assert started and started[0].returncode is not None


async def test_cancelling_the_work_kills_ffmpeg() -> None:
    started: list[asyncio.subprocess.Process] = []
    ready = asyncio.Event()

    def on_start(process: asyncio.subprocess.Process) -> None:
        started.append(process)
        ready.set()

    task = asyncio.create_task(run_ffmpeg(ENDLESS, timeout=60, on_start=on_start))
    await asyncio.wait_for(ready.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert started[0].returncode is not None


async def test_heavy_work_is_served_in_turn() -> None:
    configure(cpu_slots=2)
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        async with cpu_slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    try:
        await asyncio.gather(*(work() for _ in range(8)))
    finally:
        configure(cpu_slots=os.cpu_count() or 1)
    assert peak == 2


def test_every_declared_runtime_dependency_is_used_by_the_code() -> None:
    """A dependency in pyproject.toml that nothing imports is dead weight (or a missing use)."""
    import re
    import tomllib

    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    module_of = {"discord.py": "discord", "ffmpeg-python": "ffmpeg"}
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for folder in ("core", "adapters", "bot")
        for path in (root / folder).rglob("*.py")
    )
    unused = []
    for requirement in declared:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        module = module_of.get(name, name.replace("-", "_"))
        if not re.search(rf"^\s*(import|from) {re.escape(module)}\b", sources, re.MULTILINE):
            unused.append(name)
    assert unused == []
