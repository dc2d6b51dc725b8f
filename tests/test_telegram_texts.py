"""Every text in English and Korean, and the Telegram rendering rules that need no server."""

from __future__ import annotations

import string

import pytest

from adapters.telegram.app import webhook_secret
from adapters.telegram.commands import MENU, menu
from adapters.telegram.keyboards import MAX_CAPTION, clip, keyboard, mentioned, session_of
from core.actions import Back, Cancel, PickTemplate, Submit
from core.i18n import LANGUAGES, catalogue
from core.screens import Button, Screen


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_text_key_has_english_and_korean() -> None:
    english, korean = catalogue("en"), catalogue("ko")
    assert set(LANGUAGES) == {"en", "ko"}
    assert sorted(set(english) - set(korean)) == [], "keys missing in Korean"
    assert sorted(set(korean) - set(english)) == [], "keys missing in English"
    for key, text in english.items():
        assert text.strip() and korean[key].strip(), key
        assert placeholders(text) == placeholders(korean[key]), f"{key}: placeholders differ"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_command_menu_fits_telegrams_rules(lang: str) -> None:
    commands = menu(lang)
    assert [c.command for c in commands] == list(MENU)
    assert all(1 <= len(c.description) <= 256 for c in commands)


def test_select_items_become_buttons_two_a_row_above_the_rows() -> None:
    picks = tuple(Button(f"T{i}", PickTemplate("abcdefgh", f"t{i}")) for i in range(5))
    screen = Screen("pick", ((Button("Back", Back("abcdefgh")),),), select=picks)
    rows = keyboard(screen).inline_keyboard  # type: ignore[union-attr]
    assert [[b.text for b in row] for row in rows] == [["T0", "T1"], ["T2", "T3"], ["T4"], ["Back"]]
    assert all(len(b.callback_data.encode()) <= 64 for row in rows for b in row)  # type: ignore[union-attr]
    assert keyboard(Screen("no buttons")) is None
    assert session_of(screen) == "abcdefgh"


def test_button_styles_map_to_telegram_styles() -> None:
    screen = Screen("x", ((Button("Go", Submit("s"), "success"), Button("No", Cancel("s"))),))
    go, no = keyboard(screen).inline_keyboard[0]  # type: ignore[union-attr]
    assert go.style == "success" and no.style is None


def test_captions_are_cut_in_utf16_units_like_telegram_counts() -> None:
    emoji = "🎬" * 600  # 1200 UTF-16 units
    cut = clip(emoji, MAX_CAPTION)
    assert len(cut.encode("utf-16-le")) // 2 <= MAX_CAPTION and cut.endswith("…")
    assert clip("short", MAX_CAPTION) == "short"


def test_a_mention_is_an_entity_not_markup() -> None:
    kwargs = mentioned("✨ AI hug <b>", 42, "Boris")
    assert kwargs["caption"] == "Boris ✨ AI hug <b>"
    entity = kwargs["caption_entities"][0]
    assert entity.type == "text_mention" and entity.user.id == 42 and entity.length == 5


def test_the_webhook_secret_is_derived_when_not_configured() -> None:
    derived = webhook_secret("123:abc", None)
    assert len(derived) == 32 and derived.isalnum()
    assert derived == webhook_secret("123:abc", None) != webhook_secret("123:abd", None)
    assert webhook_secret("123:abc", "mine") == "mine"
