"""Where media lives: inputs content-addressed, per-session and per-job work files,
everything older than `MEDIA_TTL_HOURS` cleaned."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MediaStore:
    def __init__(self, root: Path, ttl_hours: float = 48) -> None:
        self.root = root
        self.ttl = ttl_hours * 3600

    def path(self, *parts: str) -> Path:
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def temp(self, suffix: str = "") -> Path:
        """A fresh path for a download in progress."""
        name = f"{os.getpid()}-{time.monotonic_ns()}{suffix}"
        return self.path("tmp", name)

    async def keep(self, source: Path, suffix: str | None = None) -> Path:
        """Move a downloaded file to its content address (same bytes → same path)."""
        digest = await asyncio.to_thread(_sha256, source)
        suffix = suffix if suffix is not None else source.suffix.lower()
        target = self.path("in", digest[:2], f"{digest}{suffix}")
        if target.exists():
            source.unlink(missing_ok=True)
            os.utime(target)
        else:
            await asyncio.to_thread(shutil.move, source, target)
        return target

    async def digest(self, path: Path) -> str:
        return await asyncio.to_thread(_sha256, path)

    def session_dir(self, session_id: str) -> Path:
        folder = self.root / "sessions" / session_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def clean(self) -> int:
        """Delete media older than the TTL; return how many files went."""
        return await asyncio.to_thread(self._clean_sync, time.time() - self.ttl)

    def _clean_sync(self, cutoff: float) -> int:
        removed = 0
        if not self.root.exists():
            return 0
        for path in self.root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("media cleanup: %d old files removed", removed)
        return removed
