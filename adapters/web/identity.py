"""Who a browser is: a random numeric id in a signed cookie, and the origin rule for POSTs.

The cookie is `ID.ISSUED.SIGNATURE` (HMAC-SHA256 with WEB_SECRET, or a key made once
and kept in the data folder, so cookies survive restarts). With WEB_ACCESS_CODE set
the code is part of the key: only someone who typed it holds a valid cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path

from aiohttp import web

from core.settings import Settings

COOKIE = "lokiz_web"


def load_secret(settings: Settings) -> bytes:
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value().encode()
    folder = settings.sqlite_path.parent if settings.sqlite_path else settings.media_dir.parent
    path = folder / "web_secret.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Keys:
    def __init__(self, secret: bytes, *, access_code: str | None, lifetime: float) -> None:
        self.access_code = access_code
        self._key = secret + (b"\0" + access_code.encode() if access_code else b"")
        self.lifetime = lifetime

    @classmethod
    def from_settings(cls, settings: Settings) -> Keys:
        code = settings.web_access_code
        return cls(load_secret(settings), access_code=code.get_secret_value() if code else None,
                   lifetime=settings.media_ttl_hours * 3600)

    def _sign(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:40]

    def issue(self, response: web.StreamResponse, user_id: str, secure: bool) -> None:
        value = f"{user_id}.{int(time.time())}"
        response.set_cookie(COOKIE, f"{value}.{self._sign(value)}", max_age=int(self.lifetime),
                            httponly=True, samesite="Strict", secure=secure, path="/")

    def visitor(self, request: web.Request) -> str | None:
        """The browser's user id, if its cookie is ours and younger than the media TTL."""
        user_id, _, rest = request.cookies.get(COOKIE, "").partition(".")
        issued, _, signature = rest.partition(".")
        if not (user_id.isdigit() and issued.isdigit()):
            return None
        if not hmac.compare_digest(signature, self._sign(f"{user_id}.{issued}")):
            return None
        return user_id if time.time() - int(issued) < self.lifetime else None

    def code_ok(self, given: str) -> bool:
        return self.access_code is None or hmac.compare_digest(given.encode(), self.access_code.encode())

    def media_id(self, chat: str, path: Path) -> str:
        return hmac.new(self._key, f"media:{chat}:{path}".encode(), hashlib.sha256).hexdigest()[:32]


def new_user_id() -> str:
    return str(10**15 + secrets.randbelow(9 * 10**15))


def same_origin(request: web.Request, public_url: str | None) -> bool:
    """A POST must come from this page (the browser's Origin header), never another site."""
    origin = request.headers.get("Origin")
    allowed = {f"{request.scheme}://{request.host}"}
    if public_url:
        allowed.add(public_url.rstrip("/"))
    return origin is not None and origin in allowed
