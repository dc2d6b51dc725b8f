"""Where media lives: inputs content-addressed, per-session and per-job work files,
everything older than `MEDIA_TTL_HOURS` cleaned (files, then the folders they leave empty).

Each stored file has a *key*: its path under MEDIA_DIR in POSIX form (`in/ab/ab12….mp4`,
`outputs/42.mp4`, `sessions/<id>/frame-12.jpg`). Any instance resolves a key: sessions and
jobs store keys, not absolute paths.

Two places behind the same `MediaStore` (the port `SharedMedia`):
- `LocalFolder` (the embedded default): MEDIA_DIR itself is the truth.
- `S3Bucket` (`MEDIA_URL=s3://bucket/prefix`, core/media_s3.py): the bucket is the truth
  shared by every instance; MEDIA_DIR is this instance's working cache, because ffmpeg and
  PyAV need local files. `keep()` and `put()` upload, `fetch()` downloads what is missing.

Each user's kept inputs are counted against `MAX_MEDIA_MB_PER_USER` (table media_usage,
rows named by key), in both modes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from core.errors import MediaQuotaExceeded
from core.storage import Database

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)

MB = 1024 * 1024
EMPTY_DIR_GRACE = 600  # seconds an empty folder stays, so a writer that just made it can fill it
PRESIGN_SECONDS = 6 * 3600  # long enough for a queued prediction to still find its inputs


def _mb(size: int) -> str:
    return f"{size / MB:.1f}".rstrip("0").rstrip(".")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """`key` when it names a file under MEDIA_DIR (relative, POSIX, no `..`); else ValueError."""
    pure = PurePosixPath(key)
    if (not key or pure.is_absolute() or ".." in pure.parts or "\\" in key
            or key != pure.as_posix() or key in (".", "")):
        raise ValueError(f"not a media key: {key!r}")
    return key


class MediaNotShared(RuntimeError):
    """A presigned URL was asked of media that no bucket holds (local folder mode)."""


class SharedMedia(Protocol):
    """The port: where every instance finds media by key (the source of truth)."""

    shared: bool  # False: only this machine's MEDIA_DIR (nothing to upload or fetch)
    public: bool  # True: the internet can GET presigned URLs (MEDIA_PUBLIC)

    async def start(self) -> None:
        """Check the place is usable; ConfigError naming the variable when it is not."""
        ...

    async def close(self) -> None: ...

    async def put(self, key: str, source: Path, *, refresh: bool = False) -> None:
        """Store `source` under `key` (same key, same bytes: a repeat only refreshes its age)."""
        ...

    async def get(self, key: str, dest: Path) -> bool:
        """Write the object to `dest`; False when there is no such object."""
        ...

    async def delete(self, key: str) -> None: ...

    async def clean(self, cutoff_for: Callable[[str], float]) -> int:
        """Delete objects older than `cutoff_for(key)` (a Unix time); return how many went."""
        ...

    async def presigned_url(self, key: str, expires: int) -> str: ...

    async def ping(self) -> bool:
        """Whether the place answers now (for /readyz)."""
        ...


class LocalFolder:
    """The embedded default: MEDIA_DIR is the truth, so there is nothing to copy anywhere."""

    shared = False
    public = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def put(self, key: str, source: Path, *, refresh: bool = False) -> None:
        return None

    async def get(self, key: str, dest: Path) -> bool:
        return dest.is_file()

    async def delete(self, key: str) -> None:
        return None

    async def clean(self, cutoff_for: Callable[[str], float]) -> int:
        return 0  # MediaStore cleans the folder itself

    async def presigned_url(self, key: str, expires: int) -> str:
        raise MediaNotShared(f"{key}: media is in a local folder (MEDIA_URL is not set)")

    async def ping(self) -> bool:
        return True  # MediaStore.ping checks the folder itself


class MediaStore:
    def __init__(
        self, root: Path, ttl_hours: float = 48, *, db: Database | None = None,
        quota_mb: int | None = None, post_ttl_days: float = 30,
        shared: SharedMedia | None = None,
    ) -> None:
        self.root = root
        self.ttl = ttl_hours * 3600
        self.post_ttl = post_ttl_days * 86400  # posts/ holds delivered clips (POST_TTL_DAYS)
        self.db = db
        self.quota = quota_mb * MB if quota_mb else None
        self.shared: SharedMedia = shared if shared is not None else LocalFolder()

    async def start(self) -> None:
        """Check the shared store at start-up (ConfigError naming the bad variable)."""
        self.root.mkdir(parents=True, exist_ok=True)
        await self.shared.start()

    async def close(self) -> None:
        await self.shared.close()

    async def ping(self) -> bool:
        """For /readyz: MEDIA_DIR is a writable folder and the shared store (MEDIA_URL)
        answers."""
        if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
            return False
        return await self.shared.ping()

    # -- keys ------------------------------------------------------------------------------
    def key_of(self, path: Path | str) -> str:
        """The stable key of a file under MEDIA_DIR (what sessions and jobs store)."""
        target = Path(path)
        try:
            relative = target.relative_to(self.root)
        except ValueError:
            # An absolute path stored before keys, or a relative MEDIA_DIR.
            relative = target.resolve().relative_to(self.root.resolve())
        return check_key(relative.as_posix())

    def local_path(self, key: str) -> Path:
        """Where `key` lives in this instance's MEDIA_DIR (it may still need `fetch`)."""
        return self.root.joinpath(*PurePosixPath(check_key(key)).parts)

    async def fetch(self, key: str) -> Path:
        """The local file of `key`, downloaded from the shared store when this instance lacks
        it; FileNotFoundError when no instance has it (cleaned, or never stored)."""
        target = self.local_path(key)
        if target.is_file():
            os.utime(target)  # in use: the local clean-up keeps it
            return target
        if not self.shared.shared:
            raise FileNotFoundError(f"media {key} is gone")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}-{time.monotonic_ns()}.part")
        try:
            if not await self.shared.get(key, partial):
                raise FileNotFoundError(f"media {key} is gone")
            partial.replace(target)  # atomic: a concurrent reader sees all of it or nothing
        finally:
            partial.unlink(missing_ok=True)
        return target

    # -- what sessions, jobs and posts store ----------------------------------------------
    def ref(self, path: Path | str) -> str:
        """What a session, a job or a post stores for a file: its key when media is shared
        (any instance resolves it), the path itself in local mode (as always)."""
        if not self.shared.shared:
            return str(path)
        try:
            return self.key_of(path)
        except ValueError:
            return str(path)  # not under MEDIA_DIR: only this machine knows it

    def path_of(self, ref: str | Path) -> Path:
        """This instance's path for a stored ref (a key, or a path stored in local mode);
        the file may still need `here`."""
        path = Path(ref)
        if not self.shared.shared:
            return path
        try:
            return self.local_path(self.key_of(path))  # a path under this MEDIA_DIR
        except ValueError:
            pass
        if path.is_absolute():
            return path  # another machine's path (stored before MEDIA_URL was set)
        try:
            return self.local_path(str(ref))
        except ValueError:
            return path

    async def here(self, ref: str | Path) -> Path:
        """The local file of a stored ref, fetched from the shared store when this instance
        lacks it. When no instance has it, the (missing) path: callers check `exists()` as
        they always did."""
        path = self.path_of(ref)
        if not self.shared.shared or path.is_file():
            return path
        try:
            return await self.fetch(self.key_of(path))
        except (ValueError, FileNotFoundError):
            return path

    async def share(self, path: Path) -> str:
        """Make a finished file readable by every instance (put it in the shared store) and
        return the ref to store for it; in local mode the path itself, nothing copied."""
        if not self.shared.shared:
            return str(path)
        return await self.put(path)

    async def put(self, path: Path) -> str:
        """Share a finished file under MEDIA_DIR (an output, a frame) and return its key."""
        key = self.key_of(path)
        await self.shared.put(key, path)
        return key

    async def presigned_url(self, key: str, expires: int = PRESIGN_SECONDS) -> str:
        """A URL that GETs `key` without credentials for `expires` seconds (S3 only;
        MediaNotShared in local mode)."""
        return await self.shared.presigned_url(check_key(key), expires)

    async def public_url(self, path: Path, expires: int = PRESIGN_SECONDS) -> str | None:
        """For a generation backend: a presigned URL of `path` when the bucket is reachable
        from the internet (MEDIA_PUBLIC), the file shared first; None means upload it."""
        if not (self.shared.shared and self.shared.public):
            return None
        key = await self.put(path)
        return await self.shared.presigned_url(key, expires)

    # -- local working files ---------------------------------------------------------------
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
        """Move a downloaded file to its content address (same bytes → same path) and share
        it (key: `media.key_of(result)`).

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
        # Kept again means in use again: the shared copy is refreshed so no clean-up takes it.
        await self.shared.put(self.key_of(target), target, refresh=True)
        return target

    async def digest(self, path: Path) -> str:
        return await asyncio.to_thread(_sha256, path)

    def session_dir(self, session_id: str) -> Path:
        folder = self.root / "sessions" / session_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def discard(self, path: Path, *, owner: int) -> None:
        """Delete a kept file that turned out unusable, and stop counting it for `owner`."""
        key = self.key_of(path)
        path.unlink(missing_ok=True)
        await self.shared.delete(key)
        if self.db is not None:
            async with self.db.transaction() as tx:
                await tx.media_usage.forget(owner, key)

    async def usage(self, owner: int) -> int:
        """Bytes of live (not yet cleaned) inputs the user brought."""
        if self.db is None:
            return 0
        async with self.db.read() as tx:
            return await tx.media_usage.used(owner, since=time.time() - self.ttl)

    async def _count(self, owner: int, target: Path, size: int) -> None:
        if self.db is None:
            return
        name = self.key_of(target)
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
        """Delete media older than the TTL (posts/: POST_TTL_DAYS) here and in the shared
        store, the folders left empty and the quota rows of what went; return how many
        files and objects went."""
        now = time.time()
        cutoff, post_cutoff = now - self.ttl, now - self.post_ttl
        removed = await asyncio.to_thread(self._clean_sync, cutoff, post_cutoff)

        def cutoff_for(key: str) -> float:
            return post_cutoff if key.startswith("posts/") else cutoff

        gone = await self.shared.clean(cutoff_for)
        if gone:
            log.info("media cleanup: %d old objects removed from the shared store", gone)
        if self.db is not None:
            async with self.db.transaction() as tx:
                await tx.media_usage.forget_before(cutoff)
        return removed + gone
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


def media_store_from(settings: Settings, db: Database | None = None) -> MediaStore:
    """The store the settings ask for: MEDIA_DIR alone, or an S3 bucket (MEDIA_URL) with
    MEDIA_DIR as the local working cache. Call `await store.start()` before use."""
    shared: SharedMedia | None = None
    if settings.media_url:
        from core.media_s3 import S3Bucket

        shared = S3Bucket.from_settings(settings)
    return MediaStore(settings.media_dir, settings.media_ttl_hours, db=db,
                      quota_mb=settings.max_media_mb_per_user,
                      post_ttl_days=settings.post_ttl_days, shared=shared)
