"""Message catalogues (English and Korean).

Texts live in `core/texts/<area>.<lang>.json`; every area file of a language is
merged into one catalogue, so each part of the product owns its own file.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "ko")
DEFAULT_LANGUAGE = "en"
_TEXTS_DIR = Path(__file__).parent / "texts"


@cache
def catalogue(lang: str) -> dict[str, str]:
    """All texts of one language, merged from every area file."""
    merged: dict[str, str] = {}
    for path in sorted(_TEXTS_DIR.glob(f"*.{lang}.json")):
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            if key in merged:
                raise ValueError(f"text key {key!r} defined twice ({path.name})")
            merged[key] = text
    return merged


def normalize_language(code: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """Map a platform language code ('ko', 'ko-KR', 'en-US') to a catalogue language."""
    if code:
        base = code.replace("_", "-").split("-")[0].lower()
        if base in LANGUAGES:
            return base
    return default


class _SafeDict(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def t(lang: str, key: str, /, **params: Any) -> str:
    """The text for `key` in `lang`, formatted with `params` (English as fallback)."""
    texts = catalogue(normalize_language(lang))
    template = texts.get(key) or catalogue(DEFAULT_LANGUAGE).get(key)
    if template is None:
        return key
    return template.format_map(_SafeDict(params))
