"""Screens: what the user sees at a step, as data the adapters render.

A screen is already translated text, optional media and rows of buttons. A
button carries an action name and short arguments; adapters encode them into
Telegram `callback_data` (≤ 64 bytes) or a Discord `custom_id` (≤ 100 chars)
with `encode_action` and decode presses with `decode_action`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The shortest platform limit: Telegram callback_data is at most 64 bytes.
MAX_ACTION_BYTES = 64
_ARG = re.compile(r"^[A-Za-z0-9_.\-+]{0,24}$")
_ACTION = re.compile(r"^[a-z][a-z_.]{0,23}$")
PREFIX = "lz"


@dataclass(frozen=True)
class Button:
    label: str
    action: str
    args: tuple[str, ...] = ()
    style: str = "secondary"  # primary | secondary | danger | success

    @property
    def data(self) -> str:
        return encode_action(self.action, self.args)


@dataclass(frozen=True)
class Screen:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    image: Path | None = None  # a photo to show with the text (frame preview, contact sheet)
    ephemeral: bool = False  # Discord: only the caller sees it
    # Discord: a select menu for long lists (the template list); Telegram shows buttons.
    select: tuple[Button, ...] = ()
    select_placeholder: str = ""

    def all_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row] + list(self.select)


def encode_action(action: str, args: tuple[str, ...] = ()) -> str:
    """`lz:action:arg1:arg2`; raises ValueError if it would not fit a platform limit."""
    if not _ACTION.match(action) or not all(_ARG.match(arg) for arg in args):
        raise ValueError(f"bad action {action!r} {args!r}")
    data = ":".join((PREFIX, action, *args))
    if len(data.encode()) > MAX_ACTION_BYTES:
        raise ValueError(f"action data too long: {data!r}")
    return data


def decode_action(data: str | None) -> tuple[str, tuple[str, ...]] | None:
    """The (action, args) in `data`, or None for anything forged or malformed."""
    if not data or len(data.encode()) > MAX_ACTION_BYTES:
        return None
    parts = data.split(":")
    if len(parts) < 2 or parts[0] != PREFIX or not _ACTION.match(parts[1]):
        return None
    args = tuple(parts[2:])
    if not all(_ARG.match(arg) for arg in args):
        return None
    return parts[1], args
