"""Recognising a first contact's welcome in what the bot said.

The welcome comes first. When the answer to the first message is plain text only
the user reads, the welcome is the top of that same message; otherwise it is a
message of its own.
"""

from __future__ import annotations

from core.i18n import t

WELCOME = "👋"  # how the welcome begins, in every language
_LAST_LINES = tuple(t(lang, "studio.welcome", balance=0, gift="").rstrip().splitlines()[-1]
                    for lang in ("en", "ko"))


def only_welcome(words: str) -> bool:
    """The words are the welcome and nothing else (not a welcome above an answer)."""
    return words.startswith(WELCOME) and words.rstrip().endswith(_LAST_LINES)


def after_welcome(words: str) -> str:
    """What follows the welcome when it sits on top of an answer ("" for a welcome alone;
    the words themselves when they do not begin with the welcome)."""
    if not words.startswith(WELCOME):
        return words
    for last in _LAST_LINES:
        at = words.find(last)
        if at >= 0:
            return words[at + len(last):].lstrip("\n")
    return words
