"""Database URLs as they may be shown: never with their password."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@]*):(?P<password>[^@/?#]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<password>[^&#]*)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`postgresql://bob:secret@host/db` → `postgresql://bob:***@host/db` (also `?password=`)."""
    url = _PASSWORD.sub(lambda m: f"{m.group('head')}:***@", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}***", url)


def url_password(url: str) -> str | None:
    """The password written in `url`, if any (to scrub it from driver messages)."""
    found = _PASSWORD.match(url) or _QUERY_PASSWORD.search(url)
    return found.group("password") or None if found else None
