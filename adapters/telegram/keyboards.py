"""Core screens as Telegram inline keyboards, captions and mentions."""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, User
from aiogram.utils.formatting import Text, TextMention

from core.actions import PostAction, SessionAction
from core.screens import Button, Screen

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_ALERT = 200
SELECT_PER_ROW = 2  # Telegram has no select menu: long lists become buttons, two a row
_STYLES = {"primary": "primary", "danger": "danger", "success": "success"}


def _button(button: Button) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=button.label, callback_data=button.data, style=_STYLES.get(button.style)
    )


def keyboard(screen: Screen) -> InlineKeyboardMarkup | None:
    """The screen's select items (two a row) then its button rows; None without buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    select = list(screen.select)
    for start in range(0, len(select), SELECT_PER_ROW):
        rows.append([_button(b) for b in select[start : start + SELECT_PER_ROW]])
    rows.extend([_button(b) for b in row] for row in screen.buttons if row)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 units (how Telegram counts), with an ellipsis."""
    if len(text.encode("utf-16-le")) // 2 <= limit:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        size = len(ch.encode("utf-16-le")) // 2
        if used + size > limit - 1:
            break
        out.append(ch)
        used += size
    return "".join(out) + "…"


def fits_caption(text: str) -> bool:
    return len(text.encode("utf-16-le")) // 2 <= MAX_CAPTION


def session_of(screen: Screen) -> str | None:
    """The studio session a screen's buttons act on (their first argument)."""
    for button in screen.all_buttons():
        if isinstance(button.action, SessionAction):
            return button.action.session
    return None


def mentioned(text: str, user_id: int, name: str, *, key: str = "caption") -> dict[str, Any]:
    """Keyword arguments for a text/caption that starts by mentioning a user (no parse mode)."""
    who = User(id=user_id, is_bot=False, first_name=name or str(user_id))
    body = Text(TextMention(name or str(user_id), user=who), " ", text)
    entities_key = "caption_entities" if key == "caption" else "entities"
    return body.as_kwargs(text_key=key, entities_key=entities_key)


def updated_keyboard(
    current: InlineKeyboardMarkup | None, screen: Screen
) -> InlineKeyboardMarkup | None:
    """A buttons-only update of some of a message's buttons, in place: a post's 👍 count
    under `/post` (next to the owner's 🗑) or on a feed clip. The message keeps its other
    buttons. None when `screen` is not such an update (its buttons are not all post
    buttons already on the message)."""
    changed = {button.data: button for row in screen.buttons for button in row}
    if current is None or not changed or not all(
        isinstance(button.action, PostAction) for button in changed.values()
    ):
        return None
    found: set[str] = set()
    rows: list[list[InlineKeyboardButton]] = []
    for row in current.inline_keyboard:
        kept: list[InlineKeyboardButton] = []
        for item in row:
            if item.callback_data in changed:
                found.add(item.callback_data)
                kept.append(_button(changed[item.callback_data]))
            else:
                kept.append(item)
        rows.append(kept)
    return InlineKeyboardMarkup(inline_keyboard=rows) if found == set(changed) else None
