"""Short, unguessable ids for jobs and sessions (they travel inside button data)."""

from __future__ import annotations

import secrets

# No 0/o, 1/l: ids are read and typed by people (/job ID).
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def short_id(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
