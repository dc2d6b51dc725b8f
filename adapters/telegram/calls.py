"""Calling the Bot API politely: flood control honoured, harmless errors recognised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_ATTEMPTS = 6
MAX_RETRY_AFTER = 30.0  # longer flood waits are not worth holding a handler for


async def with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = RETRY_ATTEMPTS,
    idempotent: bool = True,
    retry_server_errors: bool = True,
) -> T:
    """Run `call`, sleeping through `TelegramRetryAfter` (and 5xx) a bounded number of times.

    Network errors are retried only for idempotent calls (edits): a send whose
    answer was lost may have gone through, and a second one would be a duplicate.
    `retry_server_errors=False` leaves 5xx to the caller too (a result send decides itself).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TelegramRetryAfter as exc:
            if attempt == attempts or exc.retry_after > MAX_RETRY_AFTER:
                raise
            log.info("flood control: retrying in %s s", exc.retry_after)
            await asyncio.sleep(exc.retry_after)
        except TelegramServerError:
            if attempt == attempts or not retry_server_errors:
                raise
            await asyncio.sleep(min(0.5 * 2**attempt, 8))
        except TelegramNetworkError:
            if not idempotent or attempt == attempts:
                raise
            await asyncio.sleep(min(0.5 * 2**attempt, 8))
    raise AssertionError("unreachable")


def _says(exc: Exception, *needles: str) -> bool:
    text = str(getattr(exc, "message", "") or exc).lower()
    return any(needle in text for needle in needles)


def not_modified(exc: Exception) -> bool:
    return isinstance(exc, TelegramBadRequest) and _says(exc, "message is not modified")


def message_gone(exc: Exception) -> bool:
    """The message to edit is deleted, or too old / of a kind that cannot be edited."""
    return isinstance(exc, TelegramBadRequest) and _says(
        exc, "message to edit not found", "message can't be edited", "message_id_invalid"
    )


def wrong_kind(exc: Exception) -> bool:
    """Edited as text but it is a photo (or the other way round), or it has no media."""
    return isinstance(exc, TelegramBadRequest) and _says(
        exc,
        "there is no text in the message",
        "there is no caption in the message",
        "there is no media in the message",
    )


def bad_file_id(exc: Exception) -> bool:
    return isinstance(exc, TelegramBadRequest) and _says(
        exc, "wrong file identifier", "can't use file of type", "file reference", "invalid file"
    )


def chat_gone(exc: Exception) -> bool:
    """Writing to this chat will never work again (blocked, kicked, deleted)."""
    if isinstance(exc, TelegramForbiddenError):
        return True
    return isinstance(exc, TelegramBadRequest) and _says(
        exc, "chat not found", "group chat was upgraded", "have no rights to send"
    )


def reply_missing(exc: Exception) -> bool:
    return isinstance(exc, TelegramBadRequest) and _says(exc, "message to be replied not found")
