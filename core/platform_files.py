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
            return await tx.platform_files.get(platform, digest)

    async def remember(self, platform: str, path: Path, file_id: str) -> None:
        digest = await self.media.digest(path)
        async with self.db.transaction() as tx:
            await tx.platform_files.put(platform, digest, file_id)
