"""Restart-proof components: a core `Screen`'s buttons and select menu as `DynamicItem`s.

The core's encoded action (`lz:action:args`, ≤ 64 chars) is the button's
`custom_id`, so any instance of the bot, before or after a restart, knows what a
press means without remembering the view. A select menu carries each option's
encoded action as the option value. The bot that receives the press hands it to
`bot.presses` (see `presses.py`). The 📎 Upload button (Discord only) opens a
form with a file-upload field for the session that waits for an image or a clip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

import discord

from adapters.discord.downloads import FormFile
from core.actions import PostAction, SessionAction
from core.desk import AskText, Awaiting
from core.screens import Button, Screen

BUTTON_TEMPLATE = r"lz:[a-z][a-z_.]{0,23}(?::[A-Za-z0-9_.\-+]{0,24})*"
SELECT_PREFIX = "lzs:"
MODAL_PREFIX = "lzm:"
MODAL_FIELD = "text"
UPLOAD_FORM_PREFIX = "lzf:"  # its form: lzf:<session>
UPLOAD_FIELD = "file"
MAX_ROWS = 5
MAX_PER_ROW = 5
NUMBER = re.compile(r"#\d+ ")  # a clip's number on a feed page's buttons ("#3 👍 5")
_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "danger": discord.ButtonStyle.danger,
    "success": discord.ButtonStyle.success,
}


class PressHandler(Protocol):
    async def press(self, interaction: discord.Interaction, data: str) -> None: ...



def _presses(interaction: discord.Interaction) -> PressHandler:
    return interaction.client.presses  # type: ignore[attr-defined,no-any-return]


class StudioButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]], template=BUTTON_TEMPLATE
):
    """A core button: its custom_id is the encoded action."""

    def __init__(self, label: str, data: str, style: discord.ButtonStyle, row: int | None = None) -> None:
        super().__init__(
            discord.ui.Button(label=label[:80], custom_id=data, style=style), row=row
        )
        self.data = data

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> StudioButton:
        style = getattr(item, "style", discord.ButtonStyle.secondary)
        return cls(getattr(item, "label", None) or "·", match.group(0), style)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _presses(interaction).press(interaction, self.data)


class StudioSelect(
    discord.ui.DynamicItem[discord.ui.Select[discord.ui.View]],
    template=re.escape(SELECT_PREFIX) + r"[A-Za-z0-9_.:\-+]{1,90}",
):
    """A core list (the template list) as a select menu; each option's value is an encoded action."""

    def __init__(self, custom_id: str, options: list[discord.SelectOption], placeholder: str | None,
                 row: int | None = None) -> None:
        super().__init__(
            discord.ui.Select(custom_id=custom_id, options=options, placeholder=placeholder,
                              min_values=1, max_values=1),
            row=row,
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> StudioSelect:
        options = list(getattr(item, "options", []) or [discord.SelectOption(label="·", value="·")])
        return cls(match.group(0), options, getattr(item, "placeholder", None))

    async def callback(self, interaction: discord.Interaction) -> None:
        values = self.item.values
        await _presses(interaction).press(interaction, values[0] if values else "")


@dataclass(frozen=True)
class Upload(SessionAction):
    """📎 Upload (Discord only): open the file form for a session that waits for a file."""

    wire: ClassVar[str] = "dc.upload"
    kind: str  # "image" | "clip"


def offer_upload(screen: Screen, awaiting: Awaiting, label: str) -> Screen:
    """The studio screen with 📎 Upload on top when the studio waits for an image or a clip."""
    session = next((b.action.session for b in screen.all_buttons() if isinstance(b.action, SessionAction)), None)
    if not awaiting.upload or session is None:
        return screen
    upload = Button(label, Upload(session, awaiting.value), "primary")
    return replace(screen, buttons=((upload,), *screen.buttons))


def upload_modal(session_id: str, title: str, label: str) -> discord.ui.Modal:
    """The file form; like the prompt form, its submit is handled by custom_id (`lzf:<session>`)."""
    modal = discord.ui.Modal(title=title[:45] or "LOKIZ", custom_id=UPLOAD_FORM_PREFIX + session_id,
                             timeout=15 * 60)
    modal.add_item(discord.ui.Label(
        text=label[:45] or "…",
        component=discord.ui.FileUpload(custom_id=UPLOAD_FIELD, min_values=1, max_values=1, required=True),
    ))
    return modal


def uploaded(interaction: discord.Interaction) -> FormFile | None:
    """The file a submitted upload form carries: its id is the field's value, the attachment
    itself is in the interaction's resolved data."""
    data: Any = interaction.data or {}
    field: dict[str, Any] = next(
        (c for c in _walk(data.get("components") or []) if c.get("custom_id") == UPLOAD_FIELD), {})
    values = field.get("values") or []
    payload = ((data.get("resolved") or {}).get("attachments") or {}).get(str(values[0])) if values else None
    if payload is None:
        return None
    return FormFile(str(payload["url"]), str(payload["filename"]), int(payload.get("size") or 0),
                    payload.get("content_type"))


def build_view(screen: Screen) -> discord.ui.View | None:
    """The screen's select menu and button rows as a persistent view (None: no components)."""
    rows: list[list[discord.ui.Item[Any]]] = []
    seen: set[str] = set()
    if screen.select:
        options = []
        for button in screen.select[:25]:
            if button.data in seen:
                continue
            seen.add(button.data)
            options.append(discord.SelectOption(label=button.label[:100], value=button.data))
        custom_id = SELECT_PREFIX + screen.select[0].data
        rows.append([StudioSelect(custom_id, options, screen.select_placeholder[:150] or None)])
    for row in screen.buttons:
        items = [button for button in row if button.data not in seen]
        seen.update(button.data for button in items)
        for start in range(0, len(items), MAX_PER_ROW):
            rows.append([_button(button) for button in items[start:start + MAX_PER_ROW]])
    if not rows:
        return None
    view = discord.ui.View(timeout=None)
    for index, row_items in enumerate(rows[:MAX_ROWS]):
        for item in row_items:
            item.row = index
            view.add_item(item)
    return view


def updated_view(message: discord.Message | None, screen: Screen) -> discord.ui.View | None:
    """A buttons-only update of some of a message's buttons, in place: a post's 👍 count on a
    feed page (several posts in one message) or under `/post` (next to 🗑). The message keeps
    its other buttons, its layout and its clip numbers ("#3 👍 5"). None when `screen` is not
    such an update (its buttons are not all post buttons already on the message)."""
    changed = {button.data: button for button in screen.all_buttons()}
    if message is None or not changed or not all(isinstance(b.action, PostAction) for b in changed.values()):
        return None
    rows: list[list[discord.ui.Item[Any]]] = []
    found: set[str] = set()
    for row in message.components:
        if not isinstance(row, discord.ActionRow):
            return None
        items: list[discord.ui.Item[Any]] = []
        for child in row.children:
            if not isinstance(child, discord.Button) or child.custom_id is None:
                return None
            label = child.label or "·"
            if child.custom_id in changed:
                found.add(child.custom_id)
                number = NUMBER.match(label)
                label = (number.group(0) if number else "") + changed[child.custom_id].label
            items.append(StudioButton(label, child.custom_id, child.style))
        rows.append(items)
    if found != set(changed):
        return None
    view = discord.ui.View(timeout=None)
    for index, items in enumerate(rows[:MAX_ROWS]):
        for item in items:
            item.row = index
            view.add_item(item)
    return view


def _button(button: Button) -> StudioButton:
    return StudioButton(button.label, button.data, _STYLES.get(button.style, discord.ButtonStyle.secondary))


def prompt_modal(ask: AskText) -> discord.ui.Modal:
    """The form for an `AskText`; its submit is handled by custom_id (`lzm:<session>`), so it
    also works when the answer reaches another instance or the bot restarted meanwhile."""
    modal = discord.ui.Modal(title=ask.title[:45] or "LOKIZ", custom_id=MODAL_PREFIX + ask.session_id,
                             timeout=15 * 60)
    modal.add_item(discord.ui.TextInput(
        label=ask.label[:45] or "…", custom_id=MODAL_FIELD, style=discord.TextStyle.paragraph,
        placeholder=ask.placeholder[:100] or None, max_length=min(max(ask.max_length, 1), 4000),
        required=True,
    ))
    return modal


def modal_answer(data: Any) -> str:
    """The text typed into a submitted LOKIZ form (raw interaction data)."""
    for component in _walk(data.get("components") or []):
        if component.get("custom_id") == MODAL_FIELD:
            return str(component.get("value") or "")
    return ""


def _walk(components: list[Any]) -> list[Any]:
    found: list[Any] = []
    for component in components:
        found.append(component)
        found.extend(_walk(component.get("components") or []))
        if isinstance(component.get("component"), dict):
            found.extend(_walk([component["component"]]))
    return found
