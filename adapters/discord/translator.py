"""Korean localizations of command descriptions, options and choices, from the catalogue.

Strings are `locale_str(english, key=catalogue key)`; Discord shows each user
the text of their client language.
"""

from __future__ import annotations

import discord
from discord import app_commands

from core.i18n import LANGUAGES, catalogue, normalize_language, t


def text(key: str) -> app_commands.locale_str:
    """A command string: the English catalogue text, translated by key."""
    return app_commands.locale_str(t("en", key), key=key)


class CatalogueTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        key = string.extras.get("key")
        lang = normalize_language(locale.value, "")
        if not key or lang not in LANGUAGES or lang == "en":
            return None
        return catalogue(lang).get(key)
