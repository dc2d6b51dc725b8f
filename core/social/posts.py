"""Posts (SPEC §12): every delivered clip, its lineage, likes, a chat's feed and top creators.

A chat is (platform, chat_id): a Telegram group or private chat, a Discord channel or DM.
Nothing here crosses chats: the feed and /top read one chat, and a remix's source is
named only where it was posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from core.catalogue import TemplateCatalogue, UnknownTemplate
from core.i18n import LANGUAGES
from core.jobs import Job
from core.media_store import MediaStore
from core.storage import Database, Transaction

POST_TTL_DAYS = 30
FEED_DAYS = 7
FEED_PAGE_SIZE = 5
TOP_DAYS = 30
TOP_SIZE = 10
CHAIN_LIMIT = 50  # generations shown by /post (a longer chain is cut there)
INLINE_LIMIT = 50  # Telegram answers at most 50 inline results
DAY = 86400.0


@dataclass(frozen=True)
class Post:
    """One delivered clip as stored."""

    id: int
    job_id: str
    platform: str
    chat_id: str
    owner_id: int
    owner_username: str | None
    owner_display_name: str
    owner_platform_user_id: str
    created_at: float
    source_post_id: int | None
    generation: int
    clip_path: str | None
    file_id: str | None
    message_id: str | None
    likes: int  # every like, the owner's too (shown on 👍)
    score: int  # likes from others (what rankings count)
    deleted_at: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Post:
        return cls(
            id=int(row["id"]), job_id=str(row["job_id"]), platform=str(row["platform"]),
            chat_id=str(row["chat_id"]), owner_id=int(row["owner_id"]),
            owner_username=row["owner_username"],
            owner_display_name=str(row["owner_display_name"] or ""),
            owner_platform_user_id=str(row["owner_platform_user_id"]),
            created_at=float(row["created_at"]),
            source_post_id=None if row["source_post_id"] is None else int(row["source_post_id"]),
            generation=int(row["generation"]), clip_path=row["clip_path"],
            file_id=row["file_id"], message_id=row["message_id"], likes=int(row["likes"]),
            score=int(row["score"]), deleted_at=row["deleted_at"],
        )

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def owner_mention(self) -> str:
        """How the owner is named: @username, else their display name."""
        if self.owner_username:
            return f"@{self.owner_username}"
        return self.owner_display_name or f"{self.platform}:{self.owner_platform_user_id}"

    def in_chat(self, platform: str, chat_id: str) -> bool:
        return self.platform == platform and self.chat_id == str(chat_id)


@dataclass(frozen=True)
class FeedPage:
    """One page of a chat's feed (page counts from 0)."""

    posts: tuple[Post, ...]
    page: int
    pages: int

    @property
    def has_previous(self) -> bool:
        return self.page > 0

    @property
    def has_next(self) -> bool:
        return self.page + 1 < self.pages


@dataclass(frozen=True)
class Creator:
    """A creator of a chat and the likes they received from others (/top)."""

    user_id: int
    mention: str
    likes: int


class Deleted(Enum):
    DONE = "done"
    ALREADY = "already"
    NOT_ALLOWED = "not_allowed"
    NOT_FOUND = "not_found"


class PostGone(Exception):
    """The post does not exist or was deleted (a 👍 on it changes nothing)."""


def _creator(row: dict[str, Any]) -> Creator:
    name = row["owner_username"]
    mention = f"@{name}" if name else str(row["owner_display_name"] or row["owner_platform_user_id"])
    return Creator(user_id=int(row["owner_id"]), mention=mention, likes=int(row["likes"]))


def search_text(job: Job, templates: TemplateCatalogue | None) -> str:
    """What inline search matches a post's clip by: its template (id and names) and prompt."""
    request = job.request
    parts = [request.template or "", request.prompt or "", request.look or ""]
    if request.template and templates is not None:
        with contextlib.suppress(UnknownTemplate):
            template = templates.get(request.template)
            parts.extend(template.text("name", lang) for lang in LANGUAGES)
    return " ".join(" ".join(part.split()) for part in parts if part).lower()


def keep_clip(media_dir: Path, output: Path, job_id: str) -> Path:
    """A post's own copy of its clip under `posts/` (a hard link when it can be), which
    the media cleanup keeps for POST_TTL_DAYS instead of MEDIA_TTL_HOURS."""
    target = media_dir / "posts" / f"{job_id}{output.suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # its own temporary name: two deliveries of one job may keep the clip at once
    partial = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
    try:
        os.link(output, partial)
    except OSError:
        shutil.copyfile(output, partial)
    partial.replace(target)
    return target


class Posts:
    """The social core the Desk calls: posts, lineage, likes, feed, /top, inline, delete."""

    def __init__(
        self, db: Database, *, media_dir: Path | None = None,
        templates: TemplateCatalogue | None = None, post_ttl_days: int = POST_TTL_DAYS,
        clock: Callable[[], float] = time.time, media: MediaStore | None = None,
    ) -> None:
        self.db = db
        # With a media store (MEDIA_URL: shared), the kept clip goes to the bucket too.
        self.media = media
        self.media_dir = media.root if media is not None and media_dir is None else media_dir
        self.templates = templates
        self.post_ttl_days = post_ttl_days
        self.clock = clock

    # --- posts and lineage -------------------------------------------------------------
    async def record_delivered(
        self, job: Job, source_post_id: int | None = None, *, message_id: str | None = None,
        file_id: str | None = None,
    ) -> Post:
        """The post of a delivered clip, made once per job (a repeat returns the same post).

        Call it after the job is marked delivered. `source_post_id` is the post a remix
        was made from (default: the job request's `source_post`); message and file id
        default to the job's delivered ones.
        """
        clip = await self._keep(job)
        async with self.db.transaction() as tx:
            return await self.record_in(
                tx, job, source_post_id, message_id=message_id, file_id=file_id, clip=clip
            )

    async def record_in(
        self, tx: Transaction, job: Job, source_post_id: int | None = None, *,
        message_id: str | None = None, file_id: str | None = None, clip: str | None = None,
    ) -> Post:
        """`record_delivered` inside the caller's transaction (e.g. the delivered transition)."""
        existing = await tx.posts.by_job(job.id)
        if existing is not None:
            return Post.from_row(existing)
        source_id = source_post_id if source_post_id is not None else job.request.source_post
        generation, source = 1, None
        if source_id is not None:
            row = await tx.posts.get(int(source_id))
            if row is not None:
                source, generation = int(row["id"]), int(row["generation"]) + 1
        stored = await tx.posts.insert_if_new({
            "job_id": job.id, "platform": job.platform, "chat_id": str(job.chat_id),
            "owner_id": job.user_id, "created_at": self.clock(), "source_post_id": source,
            "generation": generation, "clip_path": clip if clip is not None else job.output_path,
            "file_id": file_id if file_id is not None else job.delivered_file_id,
            "message_id": message_id if message_id is not None else job.delivered_message_id,
            "search_text": search_text(job, self.templates),
        })
        return Post.from_row(stored)

    async def _keep(self, job: Job) -> str | None:
        if self.media_dir is None or not job.output_path:
            return job.output_path
        media = self.media
        output = Path(job.output_path) if media is None else await media.here(job.output_path)
        if not output.is_file():
            return job.output_path
        kept = await asyncio.to_thread(keep_clip, self.media_dir, output, job.id)
        if media is not None:
            return await media.share(kept)  # kept for POST_TTL_DAYS under posts/
        return str(kept)

    async def get(self, post_id: int) -> Post | None:
        """A post by id (deleted ones too: check `deleted`)."""
        async with self.db.read() as tx:
            row = await tx.posts.get(post_id)
        return None if row is None else Post.from_row(row)

    async def of_job(self, job_id: str) -> Post | None:
        async with self.db.read() as tx:
            row = await tx.posts.by_job(job_id)
        return None if row is None else Post.from_row(row)

    async def by_message(self, platform: str, chat_id: str, message_id: str) -> Post | None:
        """The post delivered as a message (for a remix started by replying to it)."""
        async with self.db.read() as tx:
            row = await tx.posts.by_message(platform, str(chat_id), str(message_id))
        return None if row is None else Post.from_row(row)

    async def chain(self, post_id: int) -> list[Post]:
        """The post, then the post it was remixed from, and so on back to the original."""
        async with self.db.read() as tx:
            rows = await tx.posts.ancestors(post_id, CHAIN_LIMIT)
        return [Post.from_row(row) for row in rows]

    # --- likes -------------------------------------------------------------------------
    async def toggle_like(self, post_id: int, user_id: int) -> tuple[bool, int]:
        """Like a post, or take the like back: (liked now, the post's like count).

        One like per person; safe against concurrent presses on every store. Raises
        PostGone for a missing or deleted post.
        """
        async with self.db.transaction() as tx:
            result = await tx.likes.toggle(post_id, user_id, now=self.clock())
        if result is None:
            raise PostGone(str(post_id))
        return result

    async def has_liked(self, post_id: int, user_id: int) -> bool:
        async with self.db.read() as tx:
            return await tx.likes.has_liked(post_id, user_id)

    # --- a chat's feed and top ---------------------------------------------------------
    async def feed(self, platform: str, chat_id: str, page: int = 0) -> FeedPage:
        """The chat's posts of the last FEED_DAYS days, most liked by others first."""
        since = self.clock() - FEED_DAYS * DAY
        async with self.db.read() as tx:
            total = await tx.posts.feed_size(platform, str(chat_id), since=since)
            pages = max(1, math.ceil(total / FEED_PAGE_SIZE))
            page = min(max(0, page), pages - 1)
            rows = await tx.posts.feed(
                platform, str(chat_id), since=since, limit=FEED_PAGE_SIZE,
                offset=page * FEED_PAGE_SIZE,
            )
        return FeedPage(tuple(Post.from_row(row) for row in rows), page, pages)

    async def top(self, platform: str, chat_id: str) -> list[Creator]:
        """The chat's TOP_SIZE creators by likes received from others in the last
        TOP_DAYS days (counted by UTC day; self-likes and deleted posts left out)."""
        since_day = int((self.clock() - TOP_DAYS * DAY) // DAY) + 1
        chat_id = str(chat_id)
        async with self.db.read() as tx:
            rows = await tx.likes.top_creators(platform, chat_id, since_day=since_day, limit=TOP_SIZE)
        if rows is None:  # the first /top of the day in this chat sums its last 30 days
            async with self.db.transaction() as tx:
                await tx.likes.rebuild_window(platform, chat_id, since_day)
                rows = await tx.likes.top_creators(
                    platform, chat_id, since_day=since_day, limit=TOP_SIZE
                )
        return [_creator(row) for row in rows or ()]

    # --- inline mode -------------------------------------------------------------------
    async def recent_posts_of(
        self, user_id: int, words: str | Sequence[str] = "", limit: int = INLINE_LIMIT
    ) -> list[Post]:
        """The user's own live posts that have a platform file id, newest first, whose
        template name or prompt holds every word of `words` (any case)."""
        if isinstance(words, str):
            words = words.split()
        wanted = [word.lower() for word in words if word.strip()][:8]
        async with self.db.read() as tx:
            rows = await tx.posts.of_owner(user_id, wanted, max(1, min(limit, INLINE_LIMIT)))
        return [Post.from_row(row) for row in rows]

    # --- owners control their posts ----------------------------------------------------
    async def delete(
        self, post_id: int, *, user_id: int, platform: str, chat_id: str, is_chat_admin: bool
    ) -> Deleted:
        """Delete for a person: the owner anywhere, or an admin of the post's chat pressing
        in that chat (`is_chat_admin` comes from the adapter). Others learn nothing."""
        post = await self.get(post_id)
        if post is None:
            return Deleted.NOT_FOUND
        owner = post.owner_id == user_id
        admin_here = is_chat_admin and post.in_chat(platform, chat_id)
        if not owner and not admin_here:
            # Outside the post's chat a stranger cannot tell a post from no post.
            return Deleted.NOT_ALLOWED if post.in_chat(platform, chat_id) else Deleted.NOT_FOUND
        return await self.delete_as_operator(post_id)

    async def delete_as_operator(self, post_id: int) -> Deleted:
        """Delete with no questions asked (`python -m bot posts delete ID`)."""
        async with self.db.transaction() as tx:
            if await tx.posts.lock(post_id) is None:
                return Deleted.NOT_FOUND
            done = await tx.posts.mark_deleted(post_id, self.clock())
        return Deleted.DONE if done else Deleted.ALREADY

    async def forget_old_clips(self) -> int:
        """Clear the clip of posts older than POST_TTL_DAYS (the cleanup removes the file)."""
        async with self.db.transaction() as tx:
            gone = await tx.posts.forget_clips_before(self.clock() - self.post_ttl_days * DAY)
        return len(gone)
