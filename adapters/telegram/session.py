"""The Bot API session: aiogram's aiohttp session, keeping its answer models alive.

aiogram validates every answer with `Response[T]`, a parametrised pydantic generic.
pydantic caches those in a weak dictionary, and nothing else refers to them, so
each garbage collection dropped them and the next call rebuilt the model (schema,
validator, serializer): about a tenth of the CPU of a chat update in a profile.
The session holds the ones it has used.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType


class KeptModelsSession(AiohttpSession):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answer_models: dict[Any, type[Any]] = {}

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None,
    ) -> TelegramType:
        returning = method.__returning__
        if returning not in self._answer_models:
            self._answer_models[returning] = Response[returning]  # type: ignore[valid-type]
        return await super().make_request(bot, method, timeout)
