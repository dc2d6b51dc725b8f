"""A protocol-faithful fake of the Telegram Bot API for end-to-end tests.

The real aiogram ``Bot`` talks to it over HTTP on 127.0.0.1::

    async with TelegramFake() as fake:
        bot = fake.make_bot()      # Bot(fake.token, session=AiohttpSession(api=fake.api_server))
        alice = ChatUser(fake, 1001, "Alice")
        await alice.send_text("/start")
        call = await fake.wait_for("sendMessage", chat_id=alice.chat_id)
        assert "Welcome" in fake.last_bot_message(alice.chat_id).text

What it imitates (and tests can rely on):

* Routes ``/bot{token}/{method}`` (GET or POST; urlencoded, multipart or JSON bodies;
  method names case-insensitive) and ``/file/bot{token}/{file_path}``.
* Answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
  "description": "...", "parameters": {...}}`` with the real HTTP status and the real
  description texts, so aiogram raises the same exception classes it would in production.
* ``getUpdates`` is a real long poll (offset, limit, timeout, persisted allowed_updates;
  a newer concurrent poll terminates the older one with 409 like Telegram does).
  Updates whose type is not in ``allowed_updates`` are dropped and listed in
  ``fake.dropped_updates`` -- a dispatcher without a callback_query handler never
  sees button presses, exactly as in production.
* Groups run in privacy mode by default: the bot only receives commands, mentions of
  it and replies to its own messages (others are stored but dropped, see
  ``dropped_updates``). ``TelegramFake(privacy_mode=False)`` or
  ``fake.group(..., bot_is_admin=True)`` lets it see everything.
* A private chat must be "started" (the user sent something or pressed a button)
  before the bot can write to it: otherwise 403 "bot can't initiate conversation".
* Files: multipart uploads (``attach://`` too), re-sending by file_id (kinds must match),
  http(s) URLs (fetched), ``file://`` paths in local mode. getFile answers 400
  "file is too big" above ``download_limit`` (20 MB) unless ``local=True``; in local
  mode getFile returns an absolute path on disk, which is what aiogram reads when the
  ``TelegramAPIServer`` has ``is_local=True`` (``fake.api_server`` sets it).
  Uploads above ``upload_limit`` (50 MB, 2000 MB local) answer 413.
* parse_mode HTML / MarkdownV2 / Markdown is parsed into text + entities, with
  Telegram's "can't parse entities" errors; length limits on text (4096) and captions
  (1024); callback_data at most 64 bytes.
* Edits: "message to edit not found", "message can't be edited", "there is no text in
  the message to edit", "message is not modified: ...". As on Telegram, an edit without
  ``reply_markup`` removes the inline keyboard.
* Webhook mode: after ``setWebhook(url, secret_token=...)`` queued updates are POSTed
  as JSON to ``url`` (http is accepted, unlike Telegram) with header
  ``X-Telegram-Bot-Api-Secret-Token``, one at a time, in order, retried every
  ``webhook_retry_delay`` seconds until the receiver answers 2xx. With
  ``parallel_webhooks=True`` it posts as Telegram does under load: up to the webhook's
  ``max_connections`` updates at once, one at a time per chat (a chat's next update waits
  for the previous one's 2xx). A method returned in
  the webhook response body (aiogram's ``handle_in_background=False``) is executed.
  ``getUpdates`` answers 409 while a webhook is set.

API at a glance (see each docstring):

* ``TelegramFake(token=None, local=False, download_limit=20MB, upload_limit=None,
  privacy_mode=True, strict_chats=True, validate_images=True, callback_ttl=15.0,
  webhook_retry_delay=0.5, parallel_webhooks=False)``; ``async with`` or ``start()``/``stop()``;
  ``base_url``, ``api_server``, ``session()``, ``make_bot()``, ``token``, ``bot_id``.
* Observing: ``calls``, ``calls_of(method, **params)``, ``await wait_for(method_or_predicate,
  timeout=5, after=mark(), consume=True, **params)``, ``await wait_until(fn, timeout=5)``,
  ``bot_messages(chat_id)``, ``last_bot_message(chat_id)``, ``message(chat_id, id)``,
  ``chat_history(chat_id)``, ``buttons(message)``, ``file_bytes(file_id)``,
  ``dropped_updates``, ``pending_updates``, ``webhook_deliveries``, ``commands``, ``describe()``.
* Steering: ``fail_next(method, code=429, retry_after=1, times=1, ...)``,
  ``rate_limit(method, retry_after=5)``, ``clear_faults()``, ``block_chat(id)``,
  ``group(chat_id, title, bot_is_admin=False)``, ``set_member_status(...)``,
  ``store_file(...)``, ``inject_update(...)``.
* ``ChatUser(fake, user_id, first_name, username=None, language_code="en", chat=None)``:
  ``send_text``, ``reply_text``, ``edit_text``, ``send_video(as_=...)``, ``send_photo``,
  ``send_document``, ``send_audio``, ``press(message, label)``, ``press_data(message, data)``
  (both return a ``CallbackPress``: ``await press.wait_answer()``), ``block_bot()``.

Deliberate simplifications: photo thumbnails serve the original bytes; one bot per
fake; payments, media groups, forwarding/copying answer 501.

Inline mode (``TelegramFake(inline_mode=True)``, what @BotFather ``/setinline`` turns
on; getMe then says ``supports_inline_queries``): ``ChatUser.inline_query(text)`` sends
an ``inline_query`` update (no chat, only ``chat_type``) and returns an ``InlineQuery``
(``await q.wait_answer()``). ``answerInlineQuery`` is checked like Telegram: a query
answered once, within ``inline_ttl`` (10 s), at most 50 results with unique ids of at
most 64 bytes, a cached video's ``video_file_id`` a video the fake knows and a
``title``, a ``button`` (InlineQueryResultsButton) with a text and exactly one of
``start_parameter`` (1-64 of A-Z a-z 0-9 _ -) and ``web_app``; ``cache_time``,
``is_personal`` and ``button`` are kept on the answer.
``ChatUser.choose_inline_result(answer, result_id, chat=...)`` posts what a chosen
cached video becomes: a message ``via_bot`` holding that same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import itertools
import json
import mimetypes
import random
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

MB = 1024 * 1024
DEFAULT_TOKEN = "123456789:AAF-lokiz-fake-token"
DEFAULT_DOWNLOAD_LIMIT = 20 * MB
DEFAULT_UPLOAD_LIMIT = 50 * MB
LOCAL_UPLOAD_LIMIT = 2000 * MB
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup"
    " are exactly the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"

_TOKEN_RE = re.compile(r"\d+:[\w-]+")
_current_token: ContextVar[str] = ContextVar("_current_token", default="")
_FILE_FIELDS = {"photo", "video", "audio", "document", "animation", "video_note", "voice"}
_MEDIA_KINDS = ("photo", "video", "animation", "audio", "document", "video_note", "voice")
_KIND_TITLES = {
    "photo": "Photo",
    "video": "Video",
    "animation": "Animation",
    "audio": "Audio",
    "document": "Document",
    "video_note": "VideoNote",
    "voice": "Voice",
}
_KIND_DIRS = {
    "photo": "photos",
    "video": "videos",
    "animation": "animations",
    "audio": "music",
    "document": "documents",
    "video_note": "video_notes",
    "voice": "voice",
}
_KIND_PREFIX = {
    "photo": "AgACAgIAAxk",
    "video": "BAACAgIAAxk",
    "animation": "CgACAgIAAxk",
    "audio": "CQACAgIAAxk",
    "document": "BQACAgIAAxk",
    "video_note": "DQACAgIAAxk",
    "voice": "AwACAgIAAxk",
}
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_DEFAULT_UPDATE_TYPES_EXCLUDED = {"chat_member", "message_reaction", "message_reaction_count"}
_JSON_FIELDS = {
    "reply_markup",
    "media",
    "reply_parameters",
    "entities",
    "caption_entities",
    "allowed_updates",
    "commands",
    "scope",
    "link_preview_options",
    "message_ids",
    "results",
    "button",
}
_INT_FIELDS = {
    "message_id",
    "offset",
    "limit",
    "timeout",
    "duration",
    "width",
    "height",
    "length",
    "user_id",
    "cache_time",
    "max_connections",
    "message_thread_id",
    "reply_to_message_id",
    "from_chat_id",
    "until_date",
}
_BOOL_FIELDS = {
    "show_alert",
    "drop_pending_updates",
    "disable_notification",
    "protect_content",
    "supports_streaming",
    "has_spoiler",
    "show_caption_above_media",
    "disable_content_type_detection",
    "allow_sending_without_reply",
    "disable_web_page_preview",
    "allow_paid_broadcast",
    "is_personal",
}


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status == error_code."""

    def __init__(self, code: int, description: str, **parameters: Any) -> None:
        super().__init__(f"{code} {description}")
        self.code = code
        self.description = description
        self.parameters = parameters


class FakeTimeout(AssertionError):
    """A wait_for / wait_until helper gave up; the message tells what did happen."""


@dataclass
class Upload:
    """One file part of a multipart request, spooled to the fake's temp dir."""

    name: str
    filename: str | None
    content_type: str | None
    path: Path
    size: int

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class StoredFile:
    """A file known to the fake Telegram server (uploaded by the bot or a user)."""

    file_id: str
    file_unique_id: str
    kind: str
    path: Path
    size: int
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    duration: int = 0
    photo_sizes: list[StoredFile] = field(default_factory=list)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class Call:
    """One Bot API request as the fake received and answered it."""

    index: int
    method: str
    params: dict[str, Any]
    files: dict[str, Upload]
    at: float
    token: str
    via_webhook_reply: bool = False
    done: bool = False
    status: int | None = None
    result: Any = None
    error: str | None = None
    consumed: bool = False
    answer_lost: bool = False  # carried out, but the bot never got the answer (fail_next(after=True))

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")

    def message(self) -> Any:
        """The returned Message as an aiogram object (None if the call failed)."""
        if isinstance(self.result, dict) and "message_id" in self.result:
            return _to_message(self.result)
        return None

    def short(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("reply_markup",)}
        text = json.dumps(shown, ensure_ascii=False, default=str)
        if len(text) > 160:
            text = text[:157] + "..."
        outcome = "pending" if not self.done else (self.status if self.ok else self.error)
        return f"#{self.index} {self.method} {text} -> {outcome}"


@dataclass
class Fault:
    method: str  # lower-case method name, or "*" for every method
    code: int | None
    retry_after: int | None
    times: int | None  # None: until clear_faults()
    description: str | None = None
    chat_id: int | str | None = None
    body: str | None = None
    delay: float = 0.0
    disconnect: bool = False
    after: bool = False  # the method is carried out first; only its answer is lost

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        if self.method not in ("*", method.lower()):
            return False
        return self.chat_id is None or params.get("chat_id") == self.chat_id


@dataclass
class CallbackAnswer:
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None


@dataclass
class WebhookDelivery:
    update_id: int
    status: int | None
    error: str | None
    at: float


@dataclass
class FakeChat:
    """A group or supergroup known to the fake; pass it to ChatUser(chat=...)."""

    id: int
    title: str
    type: str = "supergroup"
    username: str | None = None
    bot_is_admin: bool = False

    def to_dict(self) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": self.id, "type": self.type, "title": self.title}
        if self.username:
            chat["username"] = self.username
        return chat


@dataclass
class _ChatState:
    chat: dict[str, Any]
    group: FakeChat | None = None
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    next_message_id: int = 1
    blocked: bool = False
    started: bool = False
    member_status: dict[int, str] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.chat["id"])

    @property
    def is_private(self) -> bool:
        return self.chat["type"] == "private"


@dataclass
class _Callback:
    query: dict[str, Any]
    created: float
    answer: CallbackAnswer | None = None


@dataclass
class InlineAnswer:
    """What the bot answered to an inline query (answerInlineQuery)."""

    results: list[dict[str, Any]]
    cache_time: int
    is_personal: bool
    next_offset: str
    button: dict[str, Any] | None = None  # InlineQueryResultsButton: text + start_parameter | web_app


@dataclass
class _Inline:
    query: dict[str, Any]
    created: float
    answer: InlineAnswer | None = None


@dataclass
class _Webhook:
    url: str = ""
    secret_token: str | None = None
    max_connections: int = 40
    ip_address: str | None = None
    token: str = ""
    last_error_date: int | None = None
    last_error_message: str | None = None


def _to_message(raw: dict[str, Any]) -> Any:
    from aiogram.types import Message

    return Message.model_validate(raw)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


# --------------------------------------------------------------------------- formatting


class _EntityParseError(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, f"Bad Request: can't parse entities: {detail}")


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_ENTITY_RE = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot);")
_HTML_ATTR_RE = re.compile(r"""\s*([a-zA-Z_-]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


def parse_html(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML parse mode: returns plain text and its entities."""
    out: list[str] = []
    pos = 0  # utf-16 offset of the output
    stack: list[tuple[str, dict[str, Any] | None, int]] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(src):
        ch = src[i]
        if ch == "&":
            m = _HTML_ENTITY_RE.match(src, i)
            piece = html.unescape(m.group(0)) if m else "&"
            out.append(piece)
            pos += _utf16_len(piece)
            i = m.end() if m else i + 1
            continue
        if ch != "<":
            out.append(ch)
            pos += _utf16_len(ch)
            i += 1
            continue
        end = src.find(">", i)
        if end == -1:
            raise _EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, i)}")
        inner = src[i + 1 : end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _EntityParseError(
                    f'Unexpected end tag "{name}" at byte offset {_byte_offset(src, i)}'
                )
            tag, entity, start = stack.pop()
            if name != tag:
                raise _EntityParseError(
                    f'Unmatched end tag at byte offset {_byte_offset(src, i)}, expected "</{tag}>", found "</{name}>"'
                )
            if entity is not None and pos > start:
                entities.append({**entity, "offset": start, "length": pos - start})
        else:
            m = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inner)
            name = m.group(1).lower() if m else ""
            attrs = {
                a.group(1).lower(): html.unescape((a.group(2) or "").strip("\"'"))
                for a in _HTML_ATTR_RE.finditer(inner[len(name) :])
            }
            if name not in _HTML_TAGS or (name == "span" and attrs.get("class") != "tg-spoiler"):
                raise _EntityParseError(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(src, i)}'
                )
            entity: dict[str, Any] | None = {"type": _HTML_TAGS[name]}
            if name == "a":
                href = attrs.get("href")
                entity = {"type": "text_link", "url": href} if href else None
            elif name == "blockquote" and "expandable" in attrs:
                entity = {"type": "expandable_blockquote"}
            elif name == "tg-emoji":
                entity = {"type": "custom_emoji", "custom_emoji_id": attrs.get("emoji-id", "")}
            elif name == "code" and stack and stack[-1][0] == "pre" and "class" in attrs:
                pre = stack[-1][1]
                if pre is not None:
                    pre["language"] = attrs["class"].removeprefix("language-")
                entity = None
            stack.append((name, entity, pos))
        i = end + 1
    if stack:
        raise _EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_TITLES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


def parse_markdown_v2(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's MarkdownV2 parse mode (the common subset), with its escaping rules."""
    out: list[str] = []
    pos = 0
    stack: list[tuple[str, str, int, int]] = []  # marker, type, utf16 start, src index
    entities: list[dict[str, Any]] = []
    i = 0

    def emit(piece: str) -> None:
        nonlocal pos
        out.append(piece)
        pos += _utf16_len(piece)

    while i < len(src):
        ch = src[i]
        if ch == "\\":
            if i + 1 >= len(src):
                raise _EntityParseError(
                    "Character '\\' is reserved and must be escaped with the preceding '\\'"
                )
            emit(src[i + 1])
            i += 2
            continue
        if ch == "`":
            fence = "```" if src.startswith("```", i) else "`"
            j = i + len(fence)
            body: list[str] = []
            while j < len(src) and not src.startswith(fence, j):
                if src[j] == "\\" and j + 1 < len(src):
                    body.append(src[j + 1])
                    j += 2
                else:
                    body.append(src[j])
                    j += 1
            if j >= len(src):
                kind = "Pre" if fence == "```" else "Code"
                raise _EntityParseError(
                    f"Can't find end of {kind} entity at byte offset {_byte_offset(src, i)}"
                )
            content = "".join(body)
            entity: dict[str, Any] = {"type": "code"}
            if fence == "```":
                entity = {"type": "pre"}
                first, sep, rest = content.partition("\n")
                if sep and first and " " not in first:
                    entity["language"] = first
                    content = rest
            start = pos
            emit(content)
            if pos > start:
                entities.append({**entity, "offset": start, "length": pos - start})
            i = j + len(fence)
            continue
        marker = next((m for m in ("__", "||", "*", "_", "~") if src.startswith(m, i)), None)
        if marker is not None:
            kind = {"__": "underline", "||": "spoiler", "*": "bold", "_": "italic"}.get(
                marker, "strikethrough"
            )
            open_markers = [s[0] for s in stack]
            if marker in open_markers:
                top = stack.pop()
                if top[0] != marker:
                    raise _EntityParseError(
                        f"Can't find end of {_MDV2_TITLES[top[1]]} entity at byte offset {_byte_offset(src, top[3])}"
                    )
                if pos > top[2]:
                    entities.append({"type": kind, "offset": top[2], "length": pos - top[2]})
            else:
                stack.append((marker, kind, pos, i))
            i += len(marker)
            continue
        if ch == "[":
            stack.append(("[", "text_link", pos, i))
            i += 1
            continue
        if ch == "]" and stack and stack[-1][0] == "[":
            top = stack.pop()
            if not src.startswith("(", i + 1):
                raise _EntityParseError(
                    "Character ']' is reserved and must be escaped with the preceding '\\'"
                )
            j = i + 2
            url: list[str] = []
            while j < len(src) and src[j] != ")":
                if src[j] == "\\" and j + 1 < len(src):
                    j += 1
                url.append(src[j])
                j += 1
            if j >= len(src):
                raise _EntityParseError(
                    f"Can't find end of a URL at byte offset {_byte_offset(src, i + 1)}"
                )
            if pos > top[2]:
                entities.append(
                    {
                        "type": "text_link",
                        "offset": top[2],
                        "length": pos - top[2],
                        "url": "".join(url),
                    }
                )
            i = j + 1
            continue
        if ch == ">" and (i == 0 or src[i - 1] == "\n"):
            line_end = src.find("\n", i)
            line_end = len(src) if line_end == -1 else line_end
            start = pos
            inner_text, inner_entities = parse_markdown_v2(src[i + 1 : line_end])
            for e in inner_entities:
                entities.append({**e, "offset": e["offset"] + start})
            emit(inner_text)
            entities.append({"type": "blockquote", "offset": start, "length": pos - start})
            i = line_end
            continue
        if ch in _MDV2_RESERVED:
            raise _EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        emit(ch)
        i += 1
    if stack:
        top = stack[-1]
        raise _EntityParseError(
            f"Can't find end of {_MDV2_TITLES[top[1]]} entity at byte offset {_byte_offset(src, top[3])}"
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def parse_markdown(src: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's legacy Markdown parse mode: *bold* _italic_ `code` ```pre``` [t](url)."""
    out: list[str] = []
    pos = 0
    entities: list[dict[str, Any]] = []
    i = 0

    def emit(piece: str) -> None:
        nonlocal pos
        out.append(piece)
        pos += _utf16_len(piece)

    def missing_end(at: int) -> _EntityParseError:
        return _EntityParseError(
            f"Can't find end of the entity starting at byte offset {_byte_offset(src, at)}"
        )

    while i < len(src):
        ch = src[i]
        if ch == "\\" and i + 1 < len(src) and src[i + 1] in "_*`[":
            emit(src[i + 1])
            i += 2
            continue
        if ch in "*_`":
            fence = "```" if src.startswith("```", i) else ch
            end = src.find(fence, i + len(fence))
            if end == -1:
                raise missing_end(i)
            content = src[i + len(fence) : end]
            kind = {"*": "bold", "_": "italic", "`": "code", "```": "pre"}[fence]
            start = pos
            emit(content)
            if pos > start:
                entities.append({"type": kind, "offset": start, "length": pos - start})
            i = end + len(fence)
            continue
        if ch == "[":
            close = src.find("]", i)
            if close == -1:
                raise missing_end(i)
            if src.startswith("(", close + 1):
                url_end = src.find(")", close)
                if url_end == -1:
                    raise missing_end(i)
                start = pos
                emit(src[i + 1 : close])
                if pos > start:
                    entities.append(
                        {
                            "type": "text_link",
                            "offset": start,
                            "length": pos - start,
                            "url": src[close + 2 : url_end],
                        }
                    )
                i = url_end + 1
                continue
        emit(ch)
        i += 1
    return "".join(out), entities


def _format_text(
    text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]]]:
    if entities:
        return text, entities
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
    return text, []


_COMMAND_RE = re.compile(r"(?<![\w/])/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?")
_MENTION_RE = re.compile(r"(?<![\w@])@[a-zA-Z0-9_]{4,32}")


def _auto_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram detects in a user's plain text: commands and mentions."""
    found: list[dict[str, Any]] = []
    for kind, regex in (("bot_command", _COMMAND_RE), ("mention", _MENTION_RE)):
        for m in regex.finditer(text):
            offset = _utf16_len(text[: m.start()])
            found.append({"type": kind, "offset": offset, "length": _utf16_len(m.group(0))})
    found.sort(key=lambda e: e["offset"])
    return found


# --------------------------------------------------------------------------- media probes


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WebP image, from its header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            w = int.from_bytes(data[24:27], "little") + 1
            h = int.from_bytes(data[27:30], "little") + 1
            return w, h
        if chunk == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return int(w) & 0x3FFF, int(h) & 0x3FFF
        if chunk == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            i += 2 + int(length)
    return None


def probe_media(path: Path) -> tuple[int, int, int]:
    """(width, height, whole seconds) of a media file via PyAV; zeros if unreadable."""
    try:
        import av
    except ImportError:  # pragma: no cover - av is a project dependency
        return 0, 0, 0
    try:
        with av.open(str(path)) as container:
            video = container.streams.video[0] if container.streams.video else None
            width, height = (video.width, video.height) if video is not None else (0, 0)
            seconds = container.duration / 1_000_000 if container.duration else 0.0
            return int(width or 0), int(height or 0), round(seconds)
    except Exception:  # noqa: BLE001 - anything unreadable is "no metadata", as on Telegram
        return 0, 0, 0


def _scaled(width: int, height: int, box: int) -> tuple[int, int]:
    biggest = max(width, height)
    if biggest <= box:
        return width, height
    return max(1, round(width * box / biggest)), max(1, round(height * box / biggest))


# --------------------------------------------------------------------------- the server


class TelegramFake:
    """The fake Bot API server plus the test-side view of its state."""

    def __init__(
        self,
        *,
        token: str | None = None,
        local: bool = False,
        download_limit: int | None = DEFAULT_DOWNLOAD_LIMIT,
        upload_limit: int | None = None,
        privacy_mode: bool = True,
        strict_chats: bool = True,
        validate_images: bool = True,
        callback_ttl: float = 15.0,
        webhook_retry_delay: float = 0.5,
        inline_mode: bool = False,
        inline_ttl: float = 10.0,
        parallel_webhooks: bool = False,
        bot_first_name: str = "LOKIZ",
        bot_username: str = "lokiz_test_bot",
    ) -> None:
        self.token = token or DEFAULT_TOKEN
        self._strict_token = token is not None
        self.local = local
        self.download_limit = None if local else download_limit
        self.upload_limit = upload_limit or (LOCAL_UPLOAD_LIMIT if local else DEFAULT_UPLOAD_LIMIT)
        self.privacy_mode = privacy_mode
        self.strict_chats = strict_chats
        self.validate_images = validate_images
        self.callback_ttl = callback_ttl
        self.webhook_retry_delay = webhook_retry_delay
        self.inline_mode = inline_mode
        self.inline_ttl = inline_ttl
        self.parallel_webhooks = parallel_webhooks
        self.bot_first_name = bot_first_name
        self.bot_username = bot_username

        self.calls: list[Call] = []
        self.dropped_updates: list[tuple[dict[str, Any], str]] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}

        self._chats: dict[int, _ChatState] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._files: dict[str, StoredFile] = {}
        self._files_by_path: dict[str, StoredFile] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._inline: dict[str, _Inline] = {}
        self._faults: list[Fault] = []
        self._pending: list[dict[str, Any]] = []
        self._allowed_updates: list[str] | None = None
        self._webhook = _Webhook()
        self._webhook_task: asyncio.Task[None] | None = None
        self._next_update_id = random.randint(100_000, 900_000)
        self._file_counter = itertools.count(1)
        self._poll_generation = 0
        self._change: asyncio.Future[None] | None = None
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._port = 0
        self._handlers = self._method_table()

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> TelegramFake:
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-telegram-")
        app = web.Application(client_max_size=self.upload_limit + MB)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site.port
        self._client = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        self._closing = True
        self._bump()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def __aenter__(self) -> TelegramFake:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_server(self) -> Any:
        """aiogram TelegramAPIServer for this fake (is_local follows ``local``)."""
        from aiogram.client.telegram import TelegramAPIServer

        return TelegramAPIServer.from_base(self.base_url, is_local=self.local)

    def session(self, *, fast_close: bool = True, **kwargs: Any) -> Any:
        """An aiogram AiohttpSession pointed at this fake.

        ``fast_close`` skips only the 250 ms SSL-shutdown grace sleep of
        ``AiohttpSession.close()`` (pointless over plain HTTP, and it adds up across
        tests); requests go through aiogram's real code either way.
        """
        from aiogram.client.session.aiohttp import AiohttpSession

        cls = _fast_close_session_class() if fast_close else AiohttpSession
        return cls(api=self.api_server, **kwargs)

    def make_bot(
        self, token: str | None = None, *, fast_close: bool = True, **bot_kwargs: Any
    ) -> Any:
        """A real aiogram Bot wired to this fake (close it: ``await bot.session.close()``)."""
        from aiogram import Bot

        return Bot(token or self.token, session=self.session(fast_close=fast_close), **bot_kwargs)

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # ----------------------------------------------------------------- waiting

    def _bump(self) -> None:
        if self._change is not None and not self._change.done():
            self._change.set_result(None)
        self._change = None

    async def _wait_change(self, seconds: float | None) -> None:
        if self._change is None:
            self._change = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._change), seconds)

    def mark(self) -> int:
        """Index of the next call; pass as ``after=`` to wait only for later calls."""
        return len(self.calls)

    async def wait_for(
        self,
        match: str | Callable[[Call], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper with its own deadline
        *,
        after: int = 0,
        consume: bool = True,
        **params: Any,
    ) -> Call:
        """Wait for a finished call to ``match`` (a method name or a predicate on Call).

        ``params`` must equal the call's parsed params (``chat_id=42, text="hi"``).
        With ``consume`` (default) each call is returned to at most one wait_for, so
        waiting twice for "sendMessage" returns two different messages.
        """
        if isinstance(match, str):
            name = match.lower()

            def predicate(call: Call) -> bool:
                return call.method.lower() == name

        else:
            predicate = match

        def matches(call: Call) -> bool:
            if not call.done or (consume and call.consumed) or not predicate(call):
                return False
            return all(call.params.get(k) == v for k, v in params.items())

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for call in self.calls[after:]:
                if matches(call):
                    call.consumed = call.consumed or consume
                    return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FakeTimeout(
                    f"no call matching {match!r} {params or ''} within {timeout}s\n"
                    + self.describe()
                )
            await self._wait_change(remaining)

    async def wait_until(
        self,
        condition: Callable[[], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper with its own deadline
    ) -> Any:
        """Wait until ``condition()`` is truthy; returns its value.

        Re-checked on every change of the fake's state and, because the condition may
        look at the bot's own state (which does not notify the fake), every 50 ms.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise FakeTimeout(f"condition still false after {timeout}s\n" + self.describe())
            await self._wait_change(min(remaining, 0.05))

    def describe(self, last: int = 25) -> str:
        """A readable digest of recent calls and dropped updates, for failure messages."""
        lines = [f"recent calls ({len(self.calls)} total):"]
        lines += ["  " + call.short() for call in self.calls[-last:]]
        lines.append(f"pending updates: {len(self._pending)}")
        for update, reason in self.dropped_updates[-5:]:
            lines.append(f"dropped update {update['update_id']} ({_update_type(update)}): {reason}")
        return "\n".join(lines)

    # ----------------------------------------------------------------- calls & state

    def calls_of(self, method: str, **params: Any) -> list[Call]:
        name = method.lower()
        return [
            c
            for c in self.calls
            if c.method.lower() == name and all(c.params.get(k) == v for k, v in params.items())
        ]

    def _state(self, chat_id: int) -> _ChatState:
        if chat_id not in self._chats:
            raise KeyError(f"the fake knows no chat {chat_id}")
        return self._chats[chat_id]

    def bot_messages(self, chat_id: int) -> list[Any]:
        """Current state (after edits, without deleted ones) of the bot's messages in a chat."""
        state = self._state(chat_id)
        return [
            _to_message(msg)
            for mid, msg in sorted(state.messages.items())
            if mid not in state.deleted and msg.get("from", {}).get("id") == self.bot_id
        ]

    def last_bot_message(self, chat_id: int) -> Any | None:
        messages = self.bot_messages(chat_id)
        return messages[-1] if messages else None

    def chat_history(self, chat_id: int, *, include_deleted: bool = False) -> list[Any]:
        state = self._state(chat_id)
        return [
            _to_message(msg)
            for mid, msg in sorted(state.messages.items())
            if include_deleted or mid not in state.deleted
        ]

    def message(self, chat_id: int, message_id: int) -> Any | None:
        raw = self.raw_message(chat_id, message_id)
        return _to_message(raw) if raw is not None else None

    def raw_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        state = self._state(chat_id)
        if message_id in state.deleted:
            return None
        return state.messages.get(message_id)

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        return message_id in self._state(chat_id).deleted

    def buttons(self, message: Any) -> list[str]:
        """Labels of the inline buttons currently on a message (Message, dict or id)."""
        raw = self._resolve_message_ref(message, None)
        return [
            button["text"]
            for row in (raw.get("reply_markup") or {}).get("inline_keyboard", [])
            for button in row
        ]

    def file(self, file_id: str) -> StoredFile:
        if file_id not in self._files:
            raise KeyError(f"the fake knows no file_id {file_id!r}")
        return self._files[file_id]

    def file_bytes(self, file_id: str) -> bytes:
        return self.file(file_id).read_bytes()

    def callback_answer(self, query_id: str) -> CallbackAnswer | None:
        return self._callbacks[query_id].answer

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._pending)

    @property
    def webhook_url(self) -> str:
        return self._webhook.url

    # ----------------------------------------------------------------- chats & users

    def group(
        self,
        chat_id: int,
        title: str,
        *,
        type: str = "supergroup",
        username: str | None = None,
        bot_is_admin: bool = False,
    ) -> FakeChat:
        """Declare a group the bot is a member of; reuse the result for every member."""
        existing = self._chats.get(chat_id)
        if existing is not None and existing.group is not None:
            return existing.group
        group = FakeChat(chat_id, title, type, username, bot_is_admin)
        self._chats[chat_id] = _ChatState(chat=group.to_dict(), group=group, started=True)
        return group

    def _register_user(self, user: dict[str, Any], chat: FakeChat | None) -> _ChatState:
        self._users[user["id"]] = user
        private_state = self._private_chat(user)
        if chat is None:
            return private_state
        state = self._chats.get(chat.id)
        if state is None or state.group is None:
            self.group(
                chat.id,
                chat.title,
                type=chat.type,
                username=chat.username,
                bot_is_admin=chat.bot_is_admin,
            )
            state = self._chats[chat.id]
        state.member_status.setdefault(user["id"], "member")
        return state

    def _private_chat(self, user: dict[str, Any]) -> _ChatState:
        state = self._chats.get(user["id"])
        if state is None:
            private = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if user.get(key):
                    private[key] = user[key]
            state = _ChatState(chat=private)
            state.member_status[user["id"]] = "member"
            self._chats[user["id"]] = state
        return state

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """creator / administrator / member / restricted / left / kicked, for getChatMember."""
        self._state(chat_id).member_status[user_id] = status

    def block_chat(self, chat_id: int) -> None:
        """The user blocks the bot: sends and edits to the chat answer 403 from now on."""
        state = self._state(chat_id)
        state.blocked = True
        user = self._users.get(chat_id)
        if state.is_private and user is not None:
            self._enqueue({"my_chat_member": self._member_update(state, user, "member", "kicked")})

    def unblock_chat(self, chat_id: int) -> None:
        state = self._state(chat_id)
        state.blocked = False
        user = self._users.get(chat_id)
        if state.is_private and user is not None:
            self._enqueue({"my_chat_member": self._member_update(state, user, "kicked", "member")})

    def _member_update(
        self, state: _ChatState, user: dict[str, Any], old: str, new: str
    ) -> dict[str, Any]:
        def member(status: str) -> dict[str, Any]:
            body: dict[str, Any] = {"status": status, "user": self.bot_user}
            if status == "kicked":
                body["until_date"] = 0
            return body

        return {
            "chat": state.chat,
            "from": user,
            "date": int(time.time()),
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }

    # ----------------------------------------------------------------- faults

    def fail_next(
        self,
        method: str,
        code: int | None = 429,
        retry_after: int | None = 1,
        times: int = 1,
        *,
        description: str | None = None,
        chat_id: int | str | None = None,
        body: str | None = None,
        delay: float = 0.0,
        disconnect: bool = False,
        after: bool = False,
    ) -> None:
        """The next ``times`` calls of ``method`` ("*" for any) fail.

        429 carries ``parameters.retry_after``; other codes use Telegram's texts
        ("Internal Server Error", "Bad Gateway", ...) unless ``description`` is given.
        ``body`` sends a raw non-JSON body instead (e.g. nginx's HTML 502 page, which
        aiogram reports as ClientDecodeError); ``disconnect`` drops the connection
        (aiogram raises TelegramNetworkError); ``delay`` answers late (with
        ``code=None`` the call then succeeds normally).
        ``after=True`` loses the answer *after* the method was carried out (the
        message is posted; then the connection drops, ``code`` is answered, or the
        answer comes ``delay`` seconds late) -- a lost answer, not a refused call.
        """
        self._faults.append(
            Fault(
                method.lower(),
                code,
                retry_after if code == 429 else None,
                times,
                description,
                chat_id,
                body,
                delay,
                disconnect,
                after,
            )
        )

    def rate_limit(
        self, method: str = "*", retry_after: int = 5, *, chat_id: int | str | None = None
    ) -> None:
        """Every call of ``method`` (optionally only for one chat) gets 429 until cleared."""
        self._faults.append(Fault(method.lower(), 429, retry_after, None, chat_id=chat_id))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _download_faults(self) -> bool:
        return any(f.method == "downloadfile" for f in self._faults)

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, params):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # ----------------------------------------------------------------- updates

    def inject_update(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw update body (``{"message": {...}}``); update_id is assigned."""
        return self._enqueue(payload)

    def _enqueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, **payload}
        self._next_update_id += 1
        self._pending.append(update)
        self._bump()
        return update

    def _allowed(self) -> Callable[[str], bool]:
        allowed = self._allowed_updates
        if not allowed:
            return lambda kind: kind not in _DEFAULT_UPDATE_TYPES_EXCLUDED
        allowed_set = set(allowed)
        return lambda kind: kind in allowed_set

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        is_allowed = self._allowed()
        batch: list[dict[str, Any]] = []
        kept: list[dict[str, Any]] = []
        for update in self._pending:
            kind = _update_type(update)
            if not is_allowed(kind):
                self.dropped_updates.append(
                    (update, f"{kind!r} not in allowed_updates={self._allowed_updates}")
                )
                continue
            kept.append(update)
            if len(batch) < limit:
                batch.append(update)
        self._pending = kept
        return batch

    def _confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset < 0:
            self._pending = self._pending[offset:]
        else:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]

    def _visible_to_bot(self, state: _ChatState, msg: dict[str, Any]) -> str | None:
        """None if privacy mode lets the bot see this group message, else the reason."""
        if state.is_private or not self.privacy_mode:
            return None
        if state.group is not None and state.group.bot_is_admin:
            return None
        text = msg.get("text") or msg.get("caption") or ""
        command = re.match(r"/[a-zA-Z0-9_]+(?:@(\w+))?", text)
        if command and (
            command.group(1) is None or command.group(1).lower() == self.bot_username.lower()
        ):
            return None
        if f"@{self.bot_username.lower()}" in text.lower():
            return None
        reply = msg.get("reply_to_message")
        if reply and reply.get("from", {}).get("id") == self.bot_id:
            return None
        return "privacy mode: not a command, mention or reply to the bot"

    def _deliver_user_message(
        self, state: _ChatState, msg: dict[str, Any], kind: str = "message"
    ) -> None:
        reason = self._visible_to_bot(state, msg)
        if reason is None:
            self._enqueue({kind: msg})
        else:
            self.dropped_updates.append(({"update_id": -1, kind: msg}, reason))
        self._bump()

    # ----------------------------------------------------------------- files

    def _new_path(self, suffix: str) -> Path:
        assert self._tmp is not None, "start() the fake first"
        return Path(self._tmp.name) / f"blob_{next(self._file_counter)}{suffix}"

    def store_file(
        self,
        source: str | Path | bytes,
        kind: str,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        """Put a file into the server's store as if a user had sent it."""
        if isinstance(source, bytes):
            path = self._new_path(Path(file_name or "").suffix)
            path.write_bytes(source)
        else:
            src = Path(source)
            file_name = file_name or src.name
            path = self._new_path(src.suffix)
            shutil.copyfile(src, path)
        return self._register_file(
            kind, path, file_name, mime_type, width=width, height=height, duration=duration
        )

    def _register_file(
        self,
        kind: str,
        path: Path,
        file_name: str | None,
        mime_type: str | None,
        *,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        size = path.stat().st_size
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        if mime_type is None:
            mime_type = {"video": "video/mp4", "animation": "video/mp4", "audio": "audio/mpeg"}.get(
                kind
            )
        if kind == "photo":
            dims = image_size(_head(path))
            width = width or (dims[0] if dims else 640)
            height = height or (dims[1] if dims else 480)
            duration = 0
        elif kind in ("video", "animation", "video_note", "audio", "voice") and (
            width is None or height is None or duration is None
        ):
            pw, ph, pd = probe_media(path)
            width = width if width is not None else pw
            height = height if height is not None else ph
            duration = duration if duration is not None else pd
        stored = self._new_stored(
            kind, path, size, file_name, mime_type, width or 0, height or 0, duration or 0
        )
        if kind == "photo":
            sizes = []
            for box in (90, 320):
                if max(stored.width, stored.height) > box:
                    w, h = _scaled(stored.width, stored.height, box)
                    sizes.append(self._new_stored("photo", path, size, None, None, w, h, 0))
            stored.photo_sizes = [*sizes, stored]
        return stored

    def _new_stored(
        self,
        kind: str,
        path: Path,
        size: int,
        file_name: str | None,
        mime_type: str | None,
        width: int,
        height: int,
        duration: int,
    ) -> StoredFile:
        n = next(self._file_counter)
        unique = f"AQAD{n:06d}{random.randrange(16**6):06x}"
        file_id = f"{_KIND_PREFIX.get(kind, 'BQACAgIAAxk')}{n:06d}_{random.randrange(16**12):012x}"
        suffix = path.suffix or {"photo": ".jpg", "video": ".mp4", "animation": ".mp4"}.get(
            kind, ""
        )
        file_path = (
            str(path) if self.local else f"{_KIND_DIRS.get(kind, 'documents')}/file_{n}{suffix}"
        )
        stored = StoredFile(
            file_id,
            unique,
            kind,
            path,
            size,
            file_path,
            file_name,
            mime_type,
            width,
            height,
            duration,
        )
        self._files[file_id] = stored
        self._files_by_path[file_path] = stored
        return stored

    def _media_content(self, stored: StoredFile) -> dict[str, Any]:
        base: dict[str, Any] = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
        }
        named = dict(base)
        if stored.file_name:
            named["file_name"] = stored.file_name
        if stored.mime_type:
            named["mime_type"] = stored.mime_type
        named["file_size"] = stored.size
        kind = stored.kind
        if kind == "photo":
            return {
                "photo": [
                    {
                        "file_id": s.file_id,
                        "file_unique_id": s.file_unique_id,
                        "width": s.width,
                        "height": s.height,
                        "file_size": s.size,
                    }
                    for s in stored.photo_sizes or [stored]
                ]
            }
        if kind in ("video", "animation"):
            body = {
                **named,
                "width": stored.width,
                "height": stored.height,
                "duration": stored.duration,
            }
            if kind == "animation":
                # Telegram also fills `document` for animations, for backward compatibility.
                return {"animation": body, "document": named}
            return {"video": body}
        if kind == "video_note":
            return {
                "video_note": {
                    **base,
                    "length": min(stored.width, stored.height) or stored.width,
                    "duration": stored.duration,
                    "file_size": stored.size,
                }
            }
        if kind in ("audio", "voice"):
            return {kind: {**named, "duration": stored.duration}}
        return {"document": named}

    async def _resolve_file(
        self,
        value: Any,
        kind: str,
        uploads: dict[str, Upload],
        meta: dict[str, Any],
    ) -> StoredFile:
        if isinstance(value, str) and value.startswith("attach://"):
            name = value.removeprefix("attach://")
            if name not in uploads:
                raise ApiError(
                    400, f"Bad Request: file attach://{name} is not found in the request"
                )
            value = uploads[name]
        if isinstance(value, Upload):
            return await self._store_upload(value, kind, meta)
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        if value in self._files:
            stored = self._files[value]
            if stored.kind != kind:
                raise ApiError(
                    400,
                    f"Bad Request: can't use file of type {_KIND_TITLES.get(stored.kind, stored.kind)}"
                    f" as {_KIND_TITLES.get(kind, kind)}",
                )
            return stored
        if value.startswith(("http://", "https://")):
            data = await self._fetch_url(value)
            path = self._new_path(Path(value.split("?")[0]).suffix)
            path.write_bytes(data)
            upload = Upload(kind, Path(value.split("?")[0]).name, None, path, len(data))
            return await self._store_upload(upload, kind, meta)
        if value.startswith("file://") and self.local:
            src = Path(value.removeprefix("file://"))
            path = self._new_path(src.suffix)
            try:
                size = await asyncio.to_thread(_copy, src, path)
            except OSError as e:
                raise ApiError(400, "Bad Request: file not found") from e
            upload = Upload(kind, src.name, None, path, size)
            return await self._store_upload(upload, kind, meta)
        raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    async def _fetch_url(self, url: str) -> bytes:
        assert self._client is not None
        try:
            async with self._client.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                if resp.status != 200:
                    raise ApiError(400, "Bad Request: failed to get HTTP URL content")
                return await resp.read()
        except aiohttp.ClientError as e:
            raise ApiError(400, "Bad Request: failed to get HTTP URL content") from e

    async def _store_upload(self, upload: Upload, kind: str, meta: dict[str, Any]) -> StoredFile:
        if upload.size == 0:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if kind == "photo" and self.validate_images:
            if image_size(_head(upload.path)) is None:
                raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        width, height, duration = meta.get("width"), meta.get("height"), meta.get("duration")
        if kind == "video_note" and meta.get("length"):
            width = height = meta["length"]
        if kind in ("video", "animation", "video_note", "audio", "voice") and None in (
            width,
            height,
            duration,
        ):
            pw, ph, pd = await asyncio.to_thread(probe_media, upload.path)
            width = pw if width is None else width
            height = ph if height is None else height
            duration = pd if duration is None else duration
        return self._register_file(
            kind,
            upload.path,
            upload.filename,
            upload.content_type if upload.content_type != "application/octet-stream" else None,
            width=width,
            height=height,
            duration=duration,
        )

    # ----------------------------------------------------------------- HTTP layer

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if not self._token_ok(token):
            return _json_error(401, "Unauthorized")
        fault = self._take_fault("downloadFile", {}) if self._download_faults() else None
        if fault is not None:
            return _json_error(fault.code or 500, fault.description or "Internal Server Error")
        stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return _json_error(404, "Not Found")
        return web.FileResponse(stored.path)

    def _token_ok(self, token: str) -> bool:
        if not _TOKEN_RE.fullmatch(token):
            return False
        if not self._strict_token:
            # One bot per fake: the first token seen becomes the bot's identity.
            self.token, self._strict_token = token, True
        return token == self.token

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if not self._token_ok(token):
            return _json_error(401, "Unauthorized")
        raw: dict[str, Any] = dict(request.query)
        uploads: dict[str, Upload] = {}
        too_large = False
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            fields, uploads, too_large = await self._read_multipart(await request.multipart())
            raw.update(fields)
        elif ctype == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                raw.update(body)
        elif request.method == "POST":
            raw.update(await request.post())
        call = self._record(token, method, raw, uploads)
        if too_large:
            return self._finish(call, ApiError(413, "Request Entity Too Large"))
        fault = self._take_fault(call.method, call.params)
        if fault is not None and fault.after:
            answer = await self._run(call, uploads)  # carried out; only the answer goes astray
            call.answer_lost = True
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.disconnect:
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
            if fault.code is not None:
                if fault.body is not None:
                    return web.Response(status=fault.code, text=fault.body, content_type="text/html")
                error = _fault_error(fault)
                return _json_error(error.code, error.description, error.parameters)
            return answer
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.disconnect:
                self._finish(call, ApiError(599, "fake: connection dropped"))
                if request.transport is not None:
                    request.transport.close()
                return web.Response(status=500)
            if fault.code is not None:
                if fault.body is not None:
                    self._finish(call, ApiError(fault.code, fault.body))
                    return web.Response(
                        status=fault.code, text=fault.body, content_type="text/html"
                    )
                return self._finish(call, _fault_error(fault))
        return await self._run(call, uploads)

    async def _read_multipart(
        self, reader: aiohttp.MultipartReader
    ) -> tuple[dict[str, str], dict[str, Upload], bool]:
        fields: dict[str, str] = {}
        uploads: dict[str, Upload] = {}
        total = 0
        too_large = False
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            name = part.name or ""
            if part.filename is None:
                fields[name] = await part.text()
                continue
            path = self._new_path(Path(part.filename).suffix)
            size = 0
            with path.open("wb") as sink:
                while chunk := await part.read_chunk(256 * 1024):
                    total += len(chunk)
                    size += len(chunk)
                    if total > self.upload_limit:
                        too_large = True
                    if not too_large:
                        sink.write(chunk)
            uploads[name] = Upload(
                name, part.filename, part.headers.get("Content-Type"), path, size
            )
        return fields, uploads, too_large

    def _record(
        self, token: str, method: str, raw: dict[str, Any], uploads: dict[str, Upload]
    ) -> Call:
        canonical = self._handlers.get(method.lower(), (method, None))[0]
        params: dict[str, Any] = {}
        parse_error: ApiError | None = None
        for key, value in raw.items():
            try:
                params[key] = _coerce(key, value)
            except ApiError as e:
                parse_error = parse_error or e
                params[key] = value
        call = Call(len(self.calls), canonical, params, uploads, time.time(), token)
        if parse_error is not None:
            call.error = parse_error.description
        self.calls.append(call)
        return call

    def _finish(self, call: Call, outcome: ApiError | Any) -> web.Response:
        call.done = True
        if isinstance(outcome, ApiError):
            call.status = outcome.code
            call.error = outcome.description
            self._bump()
            return _json_error(outcome.code, outcome.description, outcome.parameters)
        call.status = 200
        call.result = outcome
        self._bump()
        return web.json_response({"ok": True, "result": outcome})

    async def _run(self, call: Call, uploads: dict[str, Upload]) -> web.Response:
        entry = self._handlers.get(call.method.lower())
        try:
            if call.error is not None:
                raise ApiError(400, call.error)
            if entry is None:
                raise ApiError(404, "Not Found")
            handler = entry[1]
            if handler is None:
                raise ApiError(
                    501, f"Not Implemented: the fake Telegram server does not support {call.method}"
                )
            _current_token.set(call.token)
            result = await handler(call.params, uploads)
        except ApiError as e:
            return self._finish(call, e)
        except asyncio.CancelledError:
            call.done, call.error = True, "cancelled: client went away"
            self._bump()
            raise
        return self._finish(call, result)

    async def _execute(
        self, token: str, method: str, raw: dict[str, Any], uploads: dict[str, Upload]
    ) -> Call:
        """Run a method outside HTTP (a webhook reply); returns the recorded call."""
        call = self._record(token, method, raw, uploads)
        call.via_webhook_reply = True
        fault = self._take_fault(call.method, call.params)
        if fault is not None and fault.code is not None:
            self._finish(call, _fault_error(fault))
        else:
            await self._run(call, uploads)
        return call

    # ----------------------------------------------------------------- method table

    def _method_table(
        self,
    ) -> dict[
        str, tuple[str, Callable[[dict[str, Any], dict[str, Upload]], Awaitable[Any]] | None]
    ]:
        implemented: dict[str, Callable[[dict[str, Any], dict[str, Upload]], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": self._media_sender("photo"),
            "sendVideo": self._media_sender("video"),
            "sendAudio": self._media_sender("audio"),
            "sendDocument": self._media_sender("document"),
            "sendAnimation": self._media_sender("animation"),
            "sendVideoNote": self._media_sender("video_note"),
            "sendVoice": self._media_sender("voice"),
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageMedia": self._edit_message_media,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
            "deleteMessage": self._delete_message,
            "deleteMessages": self._delete_messages,
            "getFile": self._get_file,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "getChatMember": self._get_chat_member,
            "getChat": self._get_chat,
            "close": self._true,
            "logOut": self._true,
        }
        table: dict[
            str, tuple[str, Callable[[dict[str, Any], dict[str, Upload]], Awaitable[Any]] | None]
        ] = {name.lower(): (name, None) for name in _known_api_methods()}
        table.update({name.lower(): (name, fn) for name, fn in implemented.items()})
        return table

    async def _true(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        return True

    async def _get_me(self, p: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": self.inline_mode,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, p: dict[str, Any], uploads: dict[str, Upload]) -> list[Any]:
        if self._webhook.url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        if "allowed_updates" in p:
            self._allowed_updates = list(p["allowed_updates"] or [])
        self._confirm(p.get("offset"))
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        timeout = max(float(p.get("timeout") or 0), 0.0)
        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._closing:
                return []
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request;"
                    " make sure that only one bot instance is running",
                )
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0:
                return batch
            await self._wait_change(remaining)

    # --- sending

    def _target_chat(self, p: dict[str, Any]) -> _ChatState:
        chat_id = p.get("chat_id")
        if chat_id is None or chat_id == "":
            raise ApiError(400, "Bad Request: chat_id is empty")
        state: _ChatState | None = None
        if isinstance(chat_id, int):
            state = self._chats.get(chat_id)
        else:
            username = str(chat_id).lstrip("@").lower()
            state = next(
                (
                    s
                    for s in self._chats.values()
                    if str(s.chat.get("username", "")).lower() == username
                ),
                None,
            )
        if state is None:
            if self.strict_chats or not isinstance(chat_id, int):
                raise ApiError(400, "Bad Request: chat not found")
            chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
            if chat_id < 0:
                chat["title"] = f"Chat {chat_id}"
            state = self._chats[chat_id] = _ChatState(chat=chat, started=True)
        if state.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if state.is_private and not state.started:
            raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return state

    def _inline_markup(self, p: dict[str, Any]) -> dict[str, Any] | None:
        markup = p.get("reply_markup")
        if not markup:
            return None
        if not isinstance(markup, dict):
            raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None  # reply keyboards are shown to the user but not part of the Message
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ApiError(
                400,
                'Bad Request: can\'t parse inline keyboard button: field "inline_keyboard" must be an Array of Arrays',
            )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise ApiError(
                        400,
                        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                    )
                actions = set(button) - {"text", "style", "icon_custom_emoji_id"}
                if not actions:
                    raise ApiError(
                        400, "Bad Request: text buttons are unallowed in the inline keyboard"
                    )
                data = button.get("callback_data")
                if data is not None and not (
                    0 < len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES
                ):
                    raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                url = button.get("url")
                if url is not None and not re.match(r"(https?|tg)://\S+$", str(url)):
                    raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
        return {"inline_keyboard": rows}

    def _reply_target(self, state: _ChatState, p: dict[str, Any]) -> dict[str, Any] | None:
        params = p.get("reply_parameters") or {}
        message_id = params.get("message_id") if isinstance(params, dict) else None
        if message_id is None:
            message_id = p.get("reply_to_message_id")
        if message_id is None:
            return None
        target_state = state
        if isinstance(params, dict) and params.get("chat_id") not in (None, state.id):
            target_state = self._chats.get(int(params["chat_id"]), state)
        target = target_state.messages.get(int(message_id))
        if target is None or int(message_id) in target_state.deleted:
            allow = p.get("allow_sending_without_reply") or (
                isinstance(params, dict) and params.get("allow_sending_without_reply")
            )
            if allow:
                return None
            raise ApiError(400, "Bad Request: message to be replied not found")
        return _without_nested_reply(target)

    def _new_message(
        self,
        state: _ChatState,
        sender: dict[str, Any],
        content: dict[str, Any],
        *,
        reply_to: dict[str, Any] | None = None,
        markup: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "message_id": state.next_message_id,
            "from": sender,
            "chat": state.chat,
            "date": int(time.time()),
        }
        state.next_message_id += 1
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        msg.update(content)
        if markup is not None:
            msg["reply_markup"] = markup
        state.messages[msg["message_id"]] = msg
        self._bump()
        return msg

    def _text_content(self, p: dict[str, Any], key: str = "text") -> dict[str, Any]:
        text = p.get(key)
        if not isinstance(text, str) or not text:
            raise ApiError(400, "Bad Request: message text is empty")
        plain, entities = _format_text(text, p.get("parse_mode"), p.get("entities"))
        if not plain.strip():
            raise ApiError(400, "Bad Request: text must be non-empty")
        if _utf16_len(plain) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        content: dict[str, Any] = {"text": plain}
        if entities:
            content["entities"] = entities
        return content

    def _caption_content(self, caption: Any, parse_mode: Any, entities: Any) -> dict[str, Any]:
        if not caption:
            return {}
        plain, found = _format_text(str(caption), parse_mode, entities)
        if _utf16_len(plain) > MAX_CAPTION_LENGTH:
            raise ApiError(400, "Bad Request: message caption is too long")
        content: dict[str, Any] = {"caption": plain} if plain else {}
        if found:
            content["caption_entities"] = found
        return content

    async def _send_message(self, p: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        state = self._target_chat(p)
        content = self._text_content(p)
        markup = self._inline_markup(p)
        reply_to = self._reply_target(state, p)
        return self._new_message(state, self.bot_user, content, reply_to=reply_to, markup=markup)

    def _media_sender(
        self, kind: str
    ) -> Callable[[dict[str, Any], dict[str, Upload]], Awaitable[dict[str, Any]]]:
        async def send(p: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
            state = self._target_chat(p)
            value = p.get(kind) or uploads.get(kind)  # a file part may carry the field itself
            if value is None:
                raise ApiError(400, f"Bad Request: there is no {kind} in the request")
            caption = (
                {}
                if kind == "video_note"
                else self._caption_content(
                    p.get("caption"), p.get("parse_mode"), p.get("caption_entities")
                )
            )
            markup = self._inline_markup(p)
            reply_to = self._reply_target(state, p)
            stored = await self._resolve_file(value, kind, uploads, p)
            content = {**self._media_content(stored), **caption}
            if p.get("has_spoiler"):
                content["has_media_spoiler"] = True
            return self._new_message(
                state, self.bot_user, content, reply_to=reply_to, markup=markup
            )

        return send

    async def _send_chat_action(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        self._target_chat(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    # --- editing

    def _editable(self, p: dict[str, Any]) -> tuple[_ChatState, dict[str, Any]]:
        if p.get("inline_message_id"):
            raise ApiError(
                501, "Not Implemented: the fake Telegram server does not support inline messages"
            )
        if p.get("message_id") is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        state = self._target_chat(p)
        message_id = int(p["message_id"])
        msg = state.messages.get(message_id)
        if msg is None or message_id in state.deleted:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg.get("from", {}).get("id") != self.bot_id:
            raise ApiError(400, "Bad Request: message can't be edited")
        return state, msg

    def _commit_edit(
        self, state: _ChatState, old: dict[str, Any], new: dict[str, Any], p: dict[str, Any]
    ) -> dict[str, Any]:
        new.pop("reply_markup", None)
        markup = self._inline_markup(p)
        if markup is not None:
            new["reply_markup"] = markup
        strip = ("edit_date",)
        if {k: v for k, v in new.items() if k not in strip} == {
            k: v for k, v in old.items() if k not in strip
        }:
            raise ApiError(400, NOT_MODIFIED)
        new["edit_date"] = int(time.time())
        state.messages[new["message_id"]] = new
        self._bump()
        return new

    async def _edit_message_text(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        state, msg = self._editable(p)
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        new = {k: v for k, v in msg.items() if k not in ("text", "entities")}
        new.update(self._text_content(p))
        return self._commit_edit(state, msg, new, p)

    async def _edit_message_caption(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        state, msg = self._editable(p)
        if not any(kind in msg for kind in _MEDIA_KINDS):
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        new = {k: v for k, v in msg.items() if k not in ("caption", "caption_entities")}
        new.update(
            self._caption_content(p.get("caption"), p.get("parse_mode"), p.get("caption_entities"))
        )
        return self._commit_edit(state, msg, new, p)

    async def _edit_message_media(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        state, msg = self._editable(p)
        media = p.get("media")
        if not isinstance(media, dict) or "media" not in media:
            raise ApiError(400, "Bad Request: there is no media in the request")
        kind = media.get("type")
        if kind not in ("photo", "video", "animation", "audio", "document"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media type is invalid")
        if not any(k in msg for k in _MEDIA_KINDS):
            raise ApiError(400, "Bad Request: there is no media in the message to edit")
        stored = await self._resolve_file(media["media"], kind, uploads, media)
        drop = {
            *_MEDIA_KINDS,
            "caption",
            "caption_entities",
            "has_media_spoiler",
            "show_caption_above_media",
        }
        new = {k: v for k, v in msg.items() if k not in drop}
        new.update(self._media_content(stored))
        new.update(
            self._caption_content(
                media.get("caption"), media.get("parse_mode"), media.get("caption_entities")
            )
        )
        if media.get("has_spoiler"):
            new["has_media_spoiler"] = True
        return self._commit_edit(state, msg, new, p)

    async def _edit_message_reply_markup(
        self, p: dict[str, Any], uploads: dict[str, Upload]
    ) -> Any:
        state, msg = self._editable(p)
        return self._commit_edit(state, msg, dict(msg), p)

    async def _delete_message(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        state = self._target_chat(p)
        self._delete_one(state, p.get("message_id"))
        return True

    async def _delete_messages(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        state = self._target_chat(p)
        for message_id in p.get("message_ids") or []:
            with contextlib.suppress(ApiError):
                self._delete_one(state, message_id)
        return True

    def _delete_one(self, state: _ChatState, message_id: Any) -> None:
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        msg = state.messages.get(int(message_id))
        if msg is None or int(message_id) in state.deleted:
            raise ApiError(400, "Bad Request: message to delete not found")
        own = msg.get("from", {}).get("id") == self.bot_id
        if not (own or state.is_private or (state.group and state.group.bot_is_admin)):
            raise ApiError(400, "Bad Request: message can't be deleted")
        state.deleted.add(int(message_id))
        self._bump()

    # --- callbacks, files, webhook, commands, members

    async def _answer_callback_query(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        record = self._callbacks.get(str(p.get("callback_query_id") or ""))
        if (
            record is None
            or record.answer is not None
            or time.monotonic() - record.created > self.callback_ttl
        ):
            raise ApiError(400, QUERY_TOO_OLD)
        text = p.get("text")
        if text is not None and _utf16_len(str(text)) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        record.answer = CallbackAnswer(
            text, bool(p.get("show_alert")), p.get("url"), p.get("cache_time")
        )
        self._bump()
        return True

    async def _answer_inline_query(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        record = self._inline.get(str(p.get("inline_query_id") or ""))
        if (
            record is None
            or record.answer is not None
            or time.monotonic() - record.created > self.inline_ttl
        ):
            raise ApiError(400, QUERY_TOO_OLD)
        results = p.get("results")
        if not isinstance(results, list):
            raise ApiError(400, "Bad Request: can't parse inline query results JSON object")
        if len(results) > 50:
            raise ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            if not isinstance(result, dict):
                raise ApiError(400, "Bad Request: can't parse inline query result")
            result_id = str(result.get("id") or "")
            if not result_id or len(result_id.encode()) > 64:
                raise ApiError(400, "Bad Request: RESULT_ID_INVALID")
            if result_id in seen:
                raise ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
            seen.add(result_id)
            if result.get("type") == "video" and "video_file_id" in result:
                stored = self._files.get(str(result["video_file_id"]))
                if stored is None or stored.kind != "video":
                    raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
                if not result.get("title"):
                    raise ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            caption = result.get("caption")
            if caption is not None and _utf16_len(str(caption)) > 1024:
                raise ApiError(400, "Bad Request: MEDIA_CAPTION_TOO_LONG")
        cache_time = p.get("cache_time", 300)
        if not isinstance(cache_time, int) or cache_time < 0:
            raise ApiError(400, "Bad Request: invalid cache_time specified")
        button = p.get("button")
        if button is not None:
            _check_results_button(button)
        record.answer = InlineAnswer(
            results, cache_time, bool(p.get("is_personal")), str(p.get("next_offset") or ""),
            button,
        )
        self._bump()
        return True

    def inline_answer(self, query_id: str) -> InlineAnswer | None:
        record = self._inline.get(query_id)
        return None if record is None else record.answer

    async def _get_file(self, p: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
        stored = self._files.get(str(p.get("file_id") or ""))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if self.download_limit is not None and stored.size > self.download_limit:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _set_webhook(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        url = str(p.get("url") or "")
        if url and not re.match(r"https?://[^/\s]+", url):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._pending.clear()
        if "allowed_updates" in p:
            self._allowed_updates = list(p["allowed_updates"] or [])
        token = _current_token.get() or self.token
        self._webhook = _Webhook(
            url=url,
            secret_token=str(secret) if secret else None,
            max_connections=int(p.get("max_connections") or 40),
            ip_address=p.get("ip_address"),
            token=token,
        )
        self._bump()  # ends a waiting long poll with 409 on its next look
        if url and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.create_task(self._webhook_worker())
        return True

    async def _delete_webhook(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        self._webhook = _Webhook()
        if p.get("drop_pending_updates"):
            self._pending.clear()
        task = self._webhook_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._bump()
        return True

    async def _get_webhook_info(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        info: dict[str, Any] = {
            "url": self._webhook.url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook.url:
            info["max_connections"] = self._webhook.max_connections
            if self._webhook.ip_address:
                info["ip_address"] = self._webhook.ip_address
            if self._allowed_updates:
                info["allowed_updates"] = self._allowed_updates
            if self._webhook.last_error_date:
                info["last_error_date"] = self._webhook.last_error_date
                info["last_error_message"] = self._webhook.last_error_message
        return info

    async def _webhook_worker(self) -> None:
        if self.parallel_webhooks:
            await self._parallel_webhook_worker()
            return
        while not self._closing and self._webhook.url:
            batch = self._deliverable(1)
            if not batch:
                await self._wait_change(None)
                continue
            update = batch[0]
            if await self._deliver(update):
                self._pending = [u for u in self._pending if u["update_id"] != update["update_id"]]
                self._bump()
            else:
                await asyncio.sleep(self.webhook_retry_delay)

    async def _parallel_webhook_worker(self) -> None:
        """Up to max_connections deliveries at once; per chat, one at a time and in order."""
        posting: dict[int, asyncio.Task[None]] = {}  # update_id -> its delivery
        busy_chats: set[int | None] = set()

        async def post(update: dict[str, Any], chat: int | None) -> None:
            try:
                if await self._deliver(update):
                    self._pending = [u for u in self._pending if u["update_id"] != update["update_id"]]
                else:
                    await asyncio.sleep(self.webhook_retry_delay)
            finally:
                posting.pop(update["update_id"], None)
                busy_chats.discard(chat)
                self._bump()

        try:
            while not self._closing and self._webhook.url:
                started = False
                for update in self._deliverable(len(self._pending)):
                    if len(posting) >= self._webhook.max_connections:
                        break
                    chat = _update_chat(update)
                    if update["update_id"] in posting or (chat is not None and chat in busy_chats):
                        continue
                    if chat is not None:
                        busy_chats.add(chat)
                    posting[update["update_id"]] = asyncio.create_task(post(update, chat))
                    started = True
                if not started:
                    await self._wait_change(None)
        finally:
            for task in list(posting.values()):
                task.cancel()

    async def _deliver(self, update: dict[str, Any]) -> bool:
        assert self._client is not None
        hook = self._webhook
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        status: int | None = None
        error: str | None = None
        try:
            async with self._client.post(
                hook.url,
                data=json.dumps(update),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                status = resp.status
                if 200 <= resp.status < 300:
                    reply = await self._webhook_reply(resp)
                else:
                    reply = None
                    error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
        except (aiohttp.ClientError, TimeoutError) as e:
            reply = None
            error = f"Connection failed: {type(e).__name__}: {e}"
        self.webhook_deliveries.append(
            WebhookDelivery(update["update_id"], status, error, time.time())
        )
        if error is not None:
            hook.last_error_date = int(time.time())
            hook.last_error_message = error
            self._bump()
            return False
        if reply is not None:
            fields, reply_uploads = reply
            method = str(fields.pop("method", ""))
            if method:
                await self._execute(hook.token or self.token, method, fields, reply_uploads)
        return True

    async def _webhook_reply(
        self, resp: aiohttp.ClientResponse
    ) -> tuple[dict[str, Any], dict[str, Upload]] | None:
        ctype = resp.headers.get("Content-Type", "")
        if ctype.startswith("multipart/"):
            reader = aiohttp.MultipartReader(resp.headers, resp.content)
            fields, uploads, _ = await self._read_multipart(reader)
            return dict(fields), uploads
        if "json" in ctype:
            with contextlib.suppress(ValueError):
                body = await resp.json(content_type=None)
                if isinstance(body, dict) and body.get("method"):
                    return dict(body), {}
        return None

    async def _set_my_commands(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_commands_key(p)] = commands
        return True

    async def _delete_my_commands(self, p: dict[str, Any], uploads: dict[str, Upload]) -> bool:
        self.commands.pop(_commands_key(p), None)
        return True

    async def _get_my_commands(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        return self.commands.get(_commands_key(p), [])

    async def _get_chat_member(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat_id = p.get("chat_id")
        state = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if state is None:
            raise ApiError(400, "Bad Request: chat not found")
        user_id = p.get("user_id")
        if user_id == self.bot_id:
            user = self.bot_user
            status = "administrator" if state.group and state.group.bot_is_admin else "member"
        elif user_id in self._users:
            user = self._users[user_id]
            status = state.member_status.get(user_id, "left")
        else:
            raise ApiError(400, "Bad Request: user not found")
        return _chat_member(user, status)

    async def _get_chat(self, p: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat_id = p.get("chat_id")
        state = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if state is None:
            raise ApiError(400, "Bad Request: chat not found")
        return {
            **state.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    # ----------------------------------------------------------------- message refs

    def _resolve_message_ref(self, message: Any, chat_id: int | None) -> dict[str, Any]:
        if isinstance(message, dict):
            chat_id, message_id = message["chat"]["id"], message["message_id"]
        elif isinstance(message, int):
            message_id = message
        else:  # an aiogram Message
            chat_id, message_id = message.chat.id, message.message_id
        if chat_id is None:
            raise ValueError("pass a Message (or a chat id) to find the message")
        raw = self.raw_message(chat_id, message_id)
        if raw is None:
            raise LookupError(f"no message {message_id} in chat {chat_id} (deleted or never sent)")
        return raw


# --------------------------------------------------------------------------- helpers


def _copy(src: Path, dst: Path) -> int:
    shutil.copyfile(src, dst)
    return dst.stat().st_size


@functools.cache
def _fast_close_session_class() -> type[Any]:
    from aiogram.client.session.aiohttp import AiohttpSession

    class FastCloseAiohttpSession(AiohttpSession):
        """AiohttpSession whose close() does not sleep 250 ms for SSL shutdown."""

        async def close(self) -> None:
            if self._session is not None and not self._session.closed:
                await self._session.close()

    return FastCloseAiohttpSession


def _head(path: Path, size: int = 256 * 1024) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def _update_type(update: dict[str, Any]) -> str:
    return next((k for k in update if k != "update_id"), "unknown")


def _update_chat(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (a callback's: its message's chat), if any."""
    body = update.get(_update_type(update))
    if not isinstance(body, dict):
        return None
    for holder in (body, body.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("chat"), dict):
            return int(holder["chat"]["id"])
    sender = body.get("from")
    return int(sender["id"]) if isinstance(sender, dict) else None


def _without_nested_reply(msg: dict[str, Any]) -> dict[str, Any]:
    # Telegram includes reply_to_message one level deep only.
    return {k: v for k, v in msg.items() if k != "reply_to_message"}


def _commands_key(p: dict[str, Any]) -> tuple[str, str]:
    scope = p.get("scope") or {"type": "default"}
    return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")


def _chat_member(user: dict[str, Any], status: str) -> dict[str, Any]:
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update(
            {
                key: False
                for key in (
                    "can_be_edited",
                    "is_anonymous",
                    "can_post_stories",
                    "can_edit_stories",
                    "can_delete_stories",
                    "can_send_welcome_messages",
                )
            }
        )
        member.update(
            {
                key: True
                for key in (
                    "can_manage_chat",
                    "can_delete_messages",
                    "can_manage_video_chats",
                    "can_restrict_members",
                    "can_promote_members",
                    "can_change_info",
                    "can_invite_users",
                )
            }
        )
    elif status == "kicked":
        member["until_date"] = 0
    elif status == "restricted":
        member.update({"is_member": True, "until_date": 0})
        member.update(
            {
                key: False
                for key in (
                    "can_send_messages",
                    "can_send_audios",
                    "can_send_documents",
                    "can_send_photos",
                    "can_send_videos",
                    "can_send_video_notes",
                    "can_send_voice_notes",
                    "can_send_polls",
                    "can_send_other_messages",
                    "can_add_web_page_previews",
                    "can_change_info",
                    "can_invite_users",
                    "can_pin_messages",
                    "can_manage_topics",
                )
            }
        )
    return member


def _check_results_button(button: Any) -> None:
    """An InlineQueryResultsButton as Telegram takes it: a text, and exactly one of
    ``start_parameter`` (1-64 of A-Z a-z 0-9 _ -) and ``web_app``."""
    if not isinstance(button, dict):
        raise ApiError(400, "Bad Request: can't parse button JSON object")
    if not isinstance(button.get("text"), str):
        raise ApiError(400, 'Bad Request: can\'t parse button: Field "text" must be of type String')
    if not button["text"].strip():
        raise ApiError(400, "Bad Request: SWITCH_PM_TEXT_EMPTY")
    if ("start_parameter" in button) == ("web_app" in button):
        raise ApiError(400, "Bad Request: InlineQueryResultsButton must have exactly one optional field")
    start = button.get("start_parameter")
    if start is not None and not (isinstance(start, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", start)):
        raise ApiError(400, "Bad Request: START_PARAM_INVALID")


def _coerce(key: str, value: Any) -> Any:
    """Parse one request parameter the way the Bot API types it."""
    if not isinstance(value, str):
        return value
    if key in _JSON_FIELDS:
        try:
            return json.loads(value)
        except ValueError as e:
            if key == "reply_markup":
                raise ApiError(
                    400, "Bad Request: can't parse reply keyboard markup JSON object"
                ) from e
            raise ApiError(400, f"Bad Request: can't parse {key} JSON object") from e
    if key == "chat_id":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if key in _INT_FIELDS:
        try:
            return int(value)
        except ValueError as e:
            raise ApiError(400, f"Bad Request: invalid {key} specified") from e
    if key in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


def _json_error(
    code: int, description: str, parameters: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


_FAULT_TEXTS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _fault_error(fault: Fault) -> ApiError:
    code = fault.code or 500
    if code == 429:
        retry_after = fault.retry_after or 1
        return ApiError(
            429,
            fault.description or f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
        )
    return ApiError(code, fault.description or _FAULT_TEXTS.get(code, "Internal Server Error"))


def _known_api_methods() -> Iterable[str]:
    try:
        from aiogram import methods
        from aiogram.methods.base import TelegramMethod
    except ImportError:  # pragma: no cover
        return []
    names = []
    for obj in vars(methods).values():
        if isinstance(obj, type) and issubclass(obj, TelegramMethod) and obj is not TelegramMethod:
            api = getattr(obj, "__api_method__", None)
            if isinstance(api, str):
                names.append(api)
    return names


# --------------------------------------------------------------------------- chat user


class CallbackPress:
    """A button press injected by ChatUser.press / press_data."""

    def __init__(self, fake: TelegramFake, query: dict[str, Any]) -> None:
        self._fake = fake
        self.query = query
        self.id: str = query["id"]
        self.data: str | None = query.get("data")

    @property
    def answer(self) -> CallbackAnswer | None:
        return self._fake.callback_answer(self.id)

    async def wait_answer(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper with its own deadline
    ) -> CallbackAnswer:
        """Wait until the bot answered this callback query (answerCallbackQuery)."""
        answer: CallbackAnswer = await self._fake.wait_until(
            lambda: self._fake.callback_answer(self.id), timeout=timeout
        )
        return answer


class InlineQuery:
    """An inline query injected by ChatUser.inline_query."""

    def __init__(self, fake: TelegramFake, query: dict[str, Any]) -> None:
        self._fake = fake
        self.query = query
        self.id: str = query["id"]

    @property
    def answer(self) -> InlineAnswer | None:
        return self._fake.inline_answer(self.id)

    async def wait_answer(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test helper with its own deadline
    ) -> InlineAnswer:
        """Wait until the bot answered this inline query (answerInlineQuery)."""
        answer: InlineAnswer = await self._fake.wait_until(
            lambda: self._fake.inline_answer(self.id), timeout=timeout
        )
        return answer


class ChatUser:
    """A Telegram user who writes to the bot, in a private chat or in a ``fake.group``."""

    def __init__(
        self,
        fake: TelegramFake,
        user_id: int,
        first_name: str,
        username: str | None = None,
        language_code: str | None = "en",
        chat: FakeChat | None = None,
        *,
        last_name: str | None = None,
        is_premium: bool | None = None,
    ) -> None:
        self.fake = fake
        self.user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
            ("is_premium", is_premium),
        ):
            if value is not None:
                self.user[key] = value
        self._state = fake._register_user(self.user, chat)

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def chat_id(self) -> int:
        return self._state.id

    def bot_messages(self) -> list[Any]:
        return self.fake.bot_messages(self.chat_id)

    def last_bot_message(self) -> Any | None:
        return self.fake.last_bot_message(self.chat_id)

    def _reply_to(self, reply_to: Any) -> dict[str, Any] | None:
        if reply_to is None:
            return None
        return _without_nested_reply(self.fake._resolve_message_ref(reply_to, self.chat_id))

    def _post(self, content: dict[str, Any], reply_to: Any = None) -> Any:
        self._state.started = True
        msg = self.fake._new_message(
            self._state, self.user, content, reply_to=self._reply_to(reply_to)
        )
        self.fake._deliver_user_message(self._state, msg)
        return _to_message(msg)

    async def send_text(self, text: str, *, reply_to: Any = None) -> Any:
        """Send a text message (commands and @mentions get their entities)."""
        content: dict[str, Any] = {"text": text}
        entities = _auto_entities(text)
        if entities:
            content["entities"] = entities
        return self._post(content, reply_to)

    async def reply_text(self, message: Any, text: str) -> Any:
        """Reply to a message (id in this chat, or a Message) with text."""
        return await self.send_text(text, reply_to=message)

    async def send_video(
        self,
        source: str | Path | bytes,
        caption: str | None = None,
        *,
        as_: str = "video",
        reply_to: Any = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> Any:
        """Send a clip as video / video_note / animation / document (bytes or a path).

        Missing width/height/duration are probed from the file (zeros if unreadable).
        """
        if as_ not in ("video", "video_note", "animation", "document"):
            raise ValueError(f"as_ must be video, video_note, animation or document, not {as_!r}")
        if as_ == "video_note" and caption:
            raise ValueError("video notes cannot have a caption on Telegram")
        if file_name is None and isinstance(source, bytes):
            file_name = "video.mp4" if as_ != "animation" else "animation.mp4"
        if mime_type is None and as_ in ("video", "document", "animation"):
            mime_type = "video/mp4"
        stored = self.fake.store_file(
            source,
            as_,
            file_name=file_name if as_ != "video_note" else None,
            mime_type=mime_type,
            width=width,
            height=height,
            duration=duration,
        )
        return self._post({**self.fake._media_content(stored), **_caption(caption)}, reply_to)

    async def send_photo(
        self,
        source: str | Path | bytes,
        caption: str | None = None,
        *,
        reply_to: Any = None,
        width: int | None = None,
        height: int | None = None,
    ) -> Any:
        stored = self.fake.store_file(source, "photo", width=width, height=height)
        return self._post({**self.fake._media_content(stored), **_caption(caption)}, reply_to)

    async def send_document(
        self,
        source: str | Path | bytes,
        caption: str | None = None,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        reply_to: Any = None,
    ) -> Any:
        stored = self.fake.store_file(
            source, "document", file_name=file_name or "file.bin", mime_type=mime_type
        )
        return self._post({**self.fake._media_content(stored), **_caption(caption)}, reply_to)

    async def send_audio(
        self,
        source: str | Path | bytes,
        caption: str | None = None,
        *,
        duration: int | None = None,
        file_name: str | None = None,
        reply_to: Any = None,
    ) -> Any:
        stored = self.fake.store_file(
            source, "audio", file_name=file_name or "audio.mp3", duration=duration
        )
        return self._post({**self.fake._media_content(stored), **_caption(caption)}, reply_to)

    async def edit_text(self, message: Any, text: str) -> Any:
        """Edit one of this user's own text messages (an ``edited_message`` update)."""
        raw = self.fake._resolve_message_ref(message, self.chat_id)
        if raw.get("from", {}).get("id") != self.id:
            raise ValueError("a user can only edit their own messages")
        new = {k: v for k, v in raw.items() if k not in ("text", "entities")}
        new["text"] = text
        entities = _auto_entities(text)
        if entities:
            new["entities"] = entities
        new["edit_date"] = int(time.time())
        self._state.messages[new["message_id"]] = new
        self.fake._deliver_user_message(self._state, new, kind="edited_message")
        return _to_message(new)

    async def press(self, message: Any, label: str) -> CallbackPress:
        """Press the inline button labelled ``label`` on the message's *current* keyboard."""
        raw = self.fake._resolve_message_ref(message, self.chat_id)
        buttons = [
            button
            for row in (raw.get("reply_markup") or {}).get("inline_keyboard", [])
            for button in row
        ]
        for button in buttons:
            if button.get("text") == label:
                if "callback_data" not in button:
                    kinds = sorted(set(button) - {"text"})
                    raise LookupError(f"button {label!r} has no callback_data (it is {kinds})")
                return self._inject_callback(raw, button["callback_data"])
        labels = [b.get("text") for b in buttons]
        raise LookupError(
            f"no button {label!r} on message {raw['message_id']} in chat {raw['chat']['id']};"
            f" available: {labels}"
        )

    async def press_data(self, message: Any, data: str) -> CallbackPress:
        """Inject a callback query with arbitrary (possibly forged) data on a message."""
        raw = self.fake._resolve_message_ref(message, self.chat_id)
        return self._inject_callback(raw, data)

    def _inject_callback(self, raw: dict[str, Any], data: str) -> CallbackPress:
        self._state.started = True
        query = {
            "id": str(random.getrandbits(63)),
            "from": self.user,
            "message": raw,
            "chat_instance": str(abs(raw["chat"]["id"]) * 7919 % 10**18),
            "data": data,
        }
        self.fake._callbacks[query["id"]] = _Callback(query, time.monotonic())
        self.fake._enqueue({"callback_query": query})
        return CallbackPress(self.fake, query)

    async def inline_query(self, text: str = "", *, offset: str = "",
                           chat_type: str | None = "private") -> InlineQuery:
        """Type ``@bot text`` in some chat: an ``inline_query`` update (it carries no chat;
        ``chat_type`` is the kind of chat it was typed in, as Telegram sends it)."""
        if not self.fake.inline_mode:
            raise ValueError("inline mode is off for this bot (@BotFather /setinline)")
        query: dict[str, Any] = {
            "id": str(random.getrandbits(63)), "from": self.user, "query": text,
            "offset": offset,
        }
        if chat_type is not None:
            query["chat_type"] = chat_type
        self.fake._inline[query["id"]] = _Inline(query, time.monotonic())
        self.fake._enqueue({"inline_query": query})
        return InlineQuery(self.fake, query)

    async def choose_inline_result(self, answer: InlineAnswer, result_id: str) -> Any:
        """Pick a result in this user's chat: a message sent ``via_bot`` with the cached
        video itself (nothing uploaded) and the result's caption."""
        result = next(r for r in answer.results if str(r.get("id")) == result_id)
        stored = self.fake.file(str(result["video_file_id"]))
        content = {**self.fake._media_content(stored), **_caption(result.get("caption")),
                   "via_bot": self.fake.bot_user}
        self._state.started = True
        msg = self.fake._new_message(self._state, self.user, content)
        self.fake._deliver_user_message(self._state, msg)
        return _to_message(msg)

    async def block_bot(self) -> None:
        self.fake.block_chat(self.chat_id)

    async def unblock_bot(self) -> None:
        self.fake.unblock_chat(self.chat_id)


def _caption(caption: str | None) -> dict[str, Any]:
    if not caption:
        return {}
    content: dict[str, Any] = {"caption": caption}
    entities = _auto_entities(caption)
    if entities:
        content["caption_entities"] = entities
    return content


__all__ = [
    "ApiError",
    "Call",
    "CallbackAnswer",
    "CallbackPress",
    "ChatUser",
    "FakeChat",
    "FakeTimeout",
    "InlineAnswer",
    "InlineQuery",
    "StoredFile",
    "TelegramFake",
    "Upload",
    "image_size",
    "parse_html",
    "parse_markdown",
    "parse_markdown_v2",
]
