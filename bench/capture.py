"""Frame capture against bare ffmpeg, measured in the same run.

    python bench/capture.py

Makes a 60 s 1920×1080 H.264 video with a 2 s GOP, captures 10 timestamps
with `core.media.capture_frame` and with `ffmpeg -ss T -i IN -frames:v 1`
(the same binary), and prints both medians and the median ratio (≤ 1.0 is
the target: the project is not slower than bare ffmpeg).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.media import capture_frame, ffmpeg_path  # noqa: E402

TIMES = (3.1, 7.9, 12.5, 19.96, 24.0, 31.3, 38.7, 45.2, 51.9, 58.5)


def make_source(path: Path) -> None:
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25:d=60",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-keyint_min", "50",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )


def bare_ffmpeg(video: Path, seconds: float, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{seconds}",
         "-i", str(video), "-frames:v", "1", "-update", "1", str(out)],
        check=True,
    )
    return time.perf_counter() - started


async def project(video: Path, seconds: float, out: Path) -> float:
    started = time.perf_counter()
    await capture_frame(video, seconds, out)
    return time.perf_counter() - started


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="lokiz-bench-") as tmp:
        work = Path(tmp)
        video = work / "source.mp4"
        make_source(video)
        await project(video, 1.0, work / "warmup.jpg")  # import and first-open costs aside
        ours, bare, ratios = [], [], []
        for index, seconds in enumerate(TIMES):
            mine = await project(video, seconds, work / f"project-{index}.jpg")
            theirs = bare_ffmpeg(video, seconds, work / f"bare-{index}.jpg")
            ours.append(mine)
            bare.append(theirs)
            ratios.append(mine / theirs)
        print(f"capture_frame median: {statistics.median(ours) * 1000:.1f} ms")
        print(f"bare ffmpeg median:   {statistics.median(bare) * 1000:.1f} ms")
        print(f"median ratio project/bare: {statistics.median(ratios):.2f} (target ≤ 1.0)")


if __name__ == "__main__":
    asyncio.run(main())
