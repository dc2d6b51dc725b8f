"""Platform file ids of media the bot already uploaded, so a re-send uploads nothing."""

from __future__ import annotations

from pathlib import Path

from core.media_store import MediaStore
from core.storage import Database


class PlatformFiles:
    def __init__(self, db: Database, media: MediaStore) -> None:
        self.db = db
        self.media = media

    async def file_id(self, platform: str, path: Path) -> str | None:
        """The platform's id for these exact bytes, if uploaded before."""
        digest = await self.media.digest(path)
        async with self.db.read() as tx:
            found = await tx.fetchval(
                "SELECT file_id FROM platform_files WHERE platform = ? AND sha256 = ?",
                (platform, digest),
            )
        return str(found) if found is not None else None

    async def remember(self, platform: str, path: Path, file_id: str) -> None:
        digest = await self.media.digest(path)
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO platform_files (platform, sha256, file_id) VALUES (?, ?, ?)"
                " ON CONFLICT (platform, sha256) DO UPDATE SET file_id = excluded.file_id",
                (platform, digest, file_id),
            )
