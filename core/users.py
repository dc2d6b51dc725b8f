"""Users: one row per (platform, platform user id), created on first contact."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import UnknownUser
from core.storage import Database, Transaction


@dataclass(frozen=True)
class User:
    id: int
    platform: str
    platform_user_id: str
    display_name: str
    username: str | None
    language: str | None
    platform_language: str | None
    balance: int

    @property
    def ref(self) -> str:
        """`platform:id`, the form admins and the CLI use."""
        return f"{self.platform}:{self.platform_user_id}"

    @property
    def mention_name(self) -> str:
        return f"@{self.username}" if self.username else self.display_name or self.ref

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> User:
        return cls(
            id=row["id"],
            platform=row["platform"],
            platform_user_id=row["platform_user_id"],
            display_name=row["display_name"],
            username=row["username"],
            language=row["language"],
            platform_language=row["platform_language"],
            balance=row["balance"],
        )


SEEN_EVERY = 3600.0  # seconds between refreshes of a user's seen_at


def _changed(row: dict[str, Any], display_name: str, username: str | None,
             platform_language: str | None) -> bool:
    """Whether the platform now tells us something about the user we have not stored."""
    return bool(
        (display_name and display_name != row["display_name"])
        or (username and username != row["username"])
        or (platform_language and platform_language != row["platform_language"])
    )


def is_whole_number(text: str) -> bool:
    """ASCII digits only: `str.isdigit` also takes "²" (int() fails) and "٥" (read as 5)."""
    return text.isascii() and text.isdigit()


def is_platform_id(text: str) -> bool:
    """A user id as the platforms write it: ASCII digits, no leading zero ("0123" is not "123")."""
    return is_whole_number(text) and not text.startswith("0")


def parse_user_ref(text: str) -> tuple[str, str]:
    """`telegram:42` → ("telegram", "42"); raises UnknownUser for other shapes."""
    platform, sep, user_id = text.strip().partition(":")
    if not sep or platform.lower() not in ("telegram", "discord", "web") or not is_platform_id(user_id):
        raise UnknownUser(f"{text!r} is not PLATFORM:ID (e.g. telegram:42)", target=text)
    return platform.lower(), user_id


class UserDirectory:
    """Finds and records users. Creation alone never grants credits (see CreditLedger)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(
        self,
        tx: Transaction,
        platform: str,
        platform_user_id: str,
        *,
        display_name: str = "",
        username: str | None = None,
        platform_language: str | None = None,
    ) -> tuple[User, bool]:
        """Create or refresh a user inside `tx`; return (user, created)."""
        now = time.time()
        row = await tx.users.by_platform_id(platform, platform_user_id)
        if row is None:
            created = await tx.users.insert_if_new(
                platform, platform_user_id, display_name=display_name, username=username,
                platform_language=platform_language, now=now,
            )
        else:
            if not (_changed(row, display_name, username, platform_language)
                    or now - row["seen_at"] > SEEN_EVERY):
                return User.from_row(row), False
            await tx.users.refresh(
                row["id"], display_name=display_name, username=username,
                platform_language=platform_language, now=now,
            )
            created = False
        fresh = await tx.users.by_platform_id(platform, platform_user_id)
        assert fresh is not None
        return User.from_row(fresh), created

    async def known(
        self,
        platform: str,
        platform_user_id: str,
        *,
        display_name: str = "",
        username: str | None = None,
        platform_language: str | None = None,
    ) -> User | None:
        """The user if already greeted and nothing to record (no write transaction needed)."""
        row = await self.db.find_user(platform, platform_user_id)
        if row is None or not row["contacted"] or time.time() - row["seen_at"] > SEEN_EVERY:
            return None
        if _changed(row, display_name, username, platform_language):
            return None
        return User.from_row(row)

    async def get(self, user_id: int) -> User:
        async with self.db.read() as tx:
            row = await tx.users.by_id(user_id)
        if row is None:
            raise UnknownUser(f"no user #{user_id}", target=str(user_id))
        return User.from_row(row)

    async def find(self, platform: str, platform_user_id: str) -> User | None:
        row = await self.db.find_user(platform, platform_user_id)
        return None if row is None else User.from_row(row)

    async def find_by_username(self, platform: str, username: str) -> User | None:
        """A user the bot has seen under `@username` (case-insensitive)."""
        async with self.db.read() as tx:
            row = await tx.users.by_username(platform, username.lstrip("@"))
        return None if row is None else User.from_row(row)

    async def set_language(self, user_id: int, language: str) -> None:
        async with self.db.transaction() as tx:
            await tx.users.set_language(user_id, language)

    async def count(self) -> int:
        async with self.db.read() as tx:
            return await tx.users.count()
