"""Where media lives: inputs content-addressed, per-session and per-job work files,
everything older than `MEDIA_TTL_HOURS` cleaned (files, then the folders they leave empty).

Each user's kept inputs are counted against `MAX_MEDIA_MB_PER_USER` (table media_usage).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from pathlib import Path

from core.errors import MediaQuotaExceeded
from core.storage import Database

log = logging.getLogger(__name__)

MB = 1024 * 1024
EMPTY_DIR_GRACE = 600  # seconds an empty folder stays, so a writer that just made it can fill it


def _mb(size: int) -> str:
    return f"{size / MB:.1f}".rstrip("0").rstrip(".")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class MediaStore:
    def __init__(
        self, root: Path, ttl_hours: float = 48, *, db: Database | None = None,
        quota_mb: int | None = None, post_ttl_days: float = 30,
    ) -> None:
        self.root = root
        self.ttl = ttl_hours * 3600
        self.post_ttl = post_ttl_days * 86400  # posts/ holds delivered clips (POST_TTL_DAYS)
        self.db = db
        self.quota = quota_mb * MB if quota_mb else None

    def path(self, *parts: str) -> Path:
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def temp(self, suffix: str = "") -> Path:
        """A fresh path for a download in progress."""
        name = f"{os.getpid()}-{time.monotonic_ns()}{suffix}"
        return self.path("tmp", name)

    async def keep(
        self, source: Path, suffix: str | None = None, *, owner: int | None = None
    ) -> Path:
        """Move a downloaded file to its content address (same bytes → same path).

        With an `owner` (a user id) the file counts against that user's media quota;
        MediaQuotaExceeded (and `source` deleted) when it would pass it.
        """
        digest = await asyncio.to_thread(_sha256, source)
        suffix = suffix if suffix is not None else source.suffix.lower()
        target = self.path("in", digest[:2], f"{digest}{suffix}")
        if owner is not None:
            try:
                await self._count(owner, target, source.stat().st_size)
            except MediaQuotaExceeded:
                source.unlink(missing_ok=True)
                raise
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

    async def discard(self, path: Path, *, owner: int) -> None:
        """Delete a kept file that turned out unusable, and stop counting it for `owner`."""
        path.unlink(missing_ok=True)
        if self.db is not None:
            async with self.db.transaction() as tx:
                await tx.media_usage.forget(owner, path.relative_to(self.root).as_posix())

    async def usage(self, owner: int) -> int:
        """Bytes of live (not yet cleaned) inputs the user brought."""
        if self.db is None:
            return 0
        async with self.db.read() as tx:
            return await tx.media_usage.used(owner, since=time.time() - self.ttl)

    async def _count(self, owner: int, target: Path, size: int) -> None:
        if self.db is None:
            return
        name = target.relative_to(self.root).as_posix()
        now = time.time()
        async with self.db.transaction() as tx:
            if self.quota is not None:
                used = await tx.media_usage.used(owner, since=now - self.ttl, besides=name)
                if used + size > self.quota:
                    raise MediaQuotaExceeded(
                        f"user {owner}: {used} + {size} bytes", used_mb=_mb(used),
                        size_mb=_mb(size), limit_mb=_mb(self.quota), hours=f"{self.ttl / 3600:g}",
                    )
            await tx.media_usage.put(owner, name, size, now)

    async def clean(self) -> int:
        """Delete media older than the TTL, the folders left empty and the quota rows of
        what went; return how many files went."""
        cutoff = time.time() - self.ttl
        removed = await asyncio.to_thread(self._clean_sync, cutoff, time.time() - self.post_ttl)
        if self.db is not None:
            async with self.db.transaction() as tx:
                await tx.media_usage.forget_before(cutoff)
        return removed

    def _clean_sync(self, cutoff: float, post_cutoff: float | None = None) -> int:
        removed = 0
        posts = self.root / "posts"
        post_cutoff = cutoff if post_cutoff is None else post_cutoff
        if not self.root.exists():
            return 0
        emptied: set[Path] = set()
        for path in self.root.rglob("*"):
            try:
                limit = post_cutoff if path.is_relative_to(posts) else cutoff
                if path.is_file() and path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
                    emptied.add(path.parent)
            except OSError:
                continue
        folders = 0
        grace = time.time() - EMPTY_DIR_GRACE
        # Deepest first, so a parent emptied by its children goes in the same pass. The top
        # folders (in/, outputs/, sessions/, …) stay: some writers make them only at start-up.
        nested = (p for p in self.root.rglob("*") if p.is_dir() and p.parent != self.root)
        for folder in sorted(nested, key=lambda p: len(p.parts), reverse=True):
            try:
                if next(folder.iterdir(), None) is None and (
                    folder in emptied or folder.stat().st_mtime < grace
                ):
                    folder.rmdir()
                    folders += 1
                    emptied.add(folder.parent)
            except OSError:
                continue  # filled again meanwhile, or already gone
        if removed or folders:
            log.info("media cleanup: %d old files and %d empty folders removed", removed, folders)
        return removed
