"""Screens: what the user sees at a step, as data the adapters render.

A screen is already translated text, optional media and rows of buttons. A
button carries a typed `Action` (core.actions); adapters put its packed form
into Telegram `callback_data` or a Discord `custom_id`, and hand presses back
to the Desk, which unpacks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.actions import Action


@dataclass(frozen=True)
class Button:
    label: str
    action: Action
    style: str = "secondary"  # primary | secondary | danger | success

    @property
    def data(self) -> str:
        return self.action.pack()


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
