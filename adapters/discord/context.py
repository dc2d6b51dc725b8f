"""Who did something, where: Discord interactions and messages as core `ChatContext`s."""

from __future__ import annotations

import discord

from core.desk import ChatContext

PLATFORM = "discord"


def interaction_context(interaction: discord.Interaction) -> ChatContext:
    """An interaction as the core sees it: in a guild the chat is a group, in a DM private."""
    user = interaction.user
    message = interaction.message
    return ChatContext(
        platform=PLATFORM,
        user_id=str(user.id),
        chat_id=str(interaction.channel_id),
        chat_kind="group" if interaction.guild_id else "private",
        display_name=user.display_name,
        username=user.name,
        language_code=str(interaction.locale.value),
        message_id=str(message.id) if message is not None else None,
    )


def message_context(message: discord.Message) -> ChatContext:
    """A plain message (a DM, or a guild message that mentions the bot)."""
    author = message.author
    return ChatContext(
        platform=PLATFORM,
        user_id=str(author.id),
        chat_id=str(message.channel.id),
        chat_kind="group" if message.guild is not None else "private",
        display_name=author.display_name,
        username=author.name,
        language_code=None,  # messages carry no locale; the user's stored language applies
        message_id=str(message.id),
    )
