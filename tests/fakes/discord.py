"""A protocol-faithful fake Discord for end-to-end tests with the real discord.py client.

One aiohttp server on 127.0.0.1 (random port) speaks Discord's REST API under
``/api/v10``, the gateway WebSocket at ``/ws`` (JSON encoding, zlib-stream or
zstd-stream transport compression) and a CDN at ``/attachments/...``.

Tests set up guilds, channels and members, inject what users do (slash commands,
context menus, button presses, selects, modal submits, plain messages) as gateway
events, and read back what the bot did: every REST call (``fake.calls``), every
message in its current state (``fake.channel_messages``) and everything done
with each interaction (``fake.interaction_responses``).

Rules of the real Discord that are enforced, because bots get them wrong:
an interaction must be acknowledged within ``interaction_ack_timeout`` seconds
(10062 Unknown interaction) and only once (40060); its token dies after
``interaction_token_ttl`` (50027); uploads over ``upload_limit`` get 413/40005;
empty messages (50006), content over 2000 characters, custom_id over 100
characters and duplicate custom_ids (50035); the first follow-up after a
deferred "thinking" response edits the loading message instead of creating a
new one; without the MESSAGE_CONTENT intent other users' guild messages arrive
with empty content and no attachments; a 429 carries ``Via`` and ``retry_after``
exactly like Discord's (discord.py only retries a 429 that has a ``Via`` header);
a message sent with a ``nonce`` and ``enforce_nonce`` that repeats one the same author
sent to the channel within ``nonce_window`` seconds returns that message instead of
posting a second one.

Gateway sessions behave like Discord's too: events go to the live connections.
A session whose socket closed without a clean close (the process was killed, the
network dropped) gets nothing over the wire; it only keeps a backlog replayed if
it RESUMEs, which makes it live again. An interaction goes to one session: the
most recently IDENTIFY'd live one, so a bot restarted after a crash gets the
presses, not the dead session of the process before it.

Sharding is Discord's: an IDENTIFY with ``shard: [i, n]`` gets a READY carrying
``shard: [i, n]`` and only the guilds with ``(guild_id >> 22) % n == i``; their events and
interactions go to that session alone, DMs to shard 0. Each interaction records the
session (and shard) it was dispatched to: only that session's process holds its token.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import math
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, WSMsgType, web

JSON = dict[str, Any]

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

# Gateway intents.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES | INTENT_MESSAGE_CONTENT

# Message flags.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15
_SETTABLE_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2

# Interaction types.
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_MESSAGE_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
INTERACTION_MODAL_SUBMIT = 5

# Interaction callback types.
CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE_MESSAGE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE_RESULT = 8
CALLBACK_MODAL = 9

_ALLOWED_CALLBACKS: dict[int, set[int]] = {
    INTERACTION_APPLICATION_COMMAND: {4, 5, 9},
    INTERACTION_MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    INTERACTION_MODAL_SUBMIT: {4, 5, 6, 7},
    INTERACTION_AUTOCOMPLETE: {8},
}

# Application command option types.
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11

_SELECT_TYPES = {3, 5, 6, 7, 8}
COMPONENT_LABEL = 18
COMPONENT_FILE_UPLOAD = 19

# VIEW_CHANNEL, SEND_MESSAGES, EMBED_LINKS, ATTACH_FILES, READ_MESSAGE_HISTORY,
# ADD_REACTIONS, USE_EXTERNAL_EMOJIS, USE_APPLICATION_COMMANDS, SEND_MESSAGES_IN_THREADS
DEFAULT_PERMISSIONS = str(
    (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 6)
    | (1 << 18)
    | (1 << 31)
    | (1 << 38)
)

_HTTP_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Request entity too large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# --------------------------------------------------------------------------- records


@dataclass
class UploadedFile:
    """One file part of a multipart request (``files[n]``)."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class Call:
    """One REST request as the fake received it."""

    method: str
    path: str  # without the /api/v10 prefix and without the query string
    query: dict[str, str]
    json: Any  # the JSON body, or the parsed payload_json of a multipart body
    files: list[UploadedFile]
    at: float  # time.monotonic() when it arrived
    status: int = 0
    answer_lost: bool = False  # carried out, but the answer never reached the bot


@dataclass
class Fault:
    """A scripted failure for the next ``remaining`` matching requests."""

    method: str
    pattern: re.Pattern[str]
    status: int
    retry_after: float
    remaining: int
    global_: bool = False
    code: int | None = None
    message: str | None = None
    hits: int = 0
    after: bool = False  # the request is carried out first; only its answer is lost
    disconnect: bool = False  # with ``after``: drop the connection instead of answering


@dataclass
class RateLimitRule:
    """A real bucket: ``limit`` requests per ``per`` seconds for each matching path."""

    method: str
    pattern: re.Pattern[str]
    limit: int
    per: float
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)
    rejected: int = 0


@dataclass
class BotResponse:
    """One thing the bot did with an interaction (callback, follow-up, edit or delete)."""

    kind: str  # callback | followup | edit_original | edit_followup | delete_original | delete_followup
    callback_type: int | None
    payload: JSON  # callback ``data`` or the webhook body
    files: list[UploadedFile]
    message_id: int | None = None

    @property
    def content(self) -> str | None:
        return self.payload.get("content")

    @property
    def flags(self) -> int:
        return int(self.payload.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def filenames(self) -> list[str]:
        return [f.filename for f in self.files]


@dataclass
class FakeInteraction:
    """An interaction the fake injected, and its life on the fake's side."""

    id: int
    token: str
    type: int
    payload: JSON
    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float
    source_message_id: int | None = None  # the message a component / modal belongs to
    opener: FakeInteraction | None = None  # the interaction that opened this modal
    callback_type: int | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    responses: list[BotResponse] = field(default_factory=list)
    modal: JSON | None = None
    modal_submitted: bool = False
    autocomplete_choices: list[JSON] | None = None
    expired: bool = False
    # The gateway session it was dispatched to: its id and its shard ([id, count], None when
    # the session is not sharded); a reply can only come from that session's process.
    session_id: str | None = None
    shard: tuple[int, int] | None = None

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def data(self) -> JSON:
        return self.payload.get("data") or {}


@dataclass
class _Blob:
    data: bytes
    content_type: str | None
    filename: str
    expired: bool = False


# --------------------------------------------------------------------------- helpers


class DiscordError(Exception):
    """An error answer in Discord's shape: HTTP status + JSON code + message (+ errors)."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def _invalid_form(path: Sequence[str | int], code: str, message: str) -> DiscordError:
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {str(key): errors}
    return DiscordError(400, 50035, "Invalid Form Body", errors)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # discord.py compares Content-Type to exactly "application/json": no charset.
    all_headers = {"Content-Type": "application/json", "Via": "1.1 google"}
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(data).encode(), headers=all_headers)


def _no_content(headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=204, headers={"Via": "1.1 google", **(headers or {})})


def _id_of(thing: Any) -> int:
    """Accept an id (int/str) or a payload dict with an "id"."""
    if isinstance(thing, Mapping):
        return int(thing["id"])
    return int(thing)


def _content_type_for(filename: str, sent: str | None) -> str | None:
    guessed = mimetypes.guess_type(filename)[0]
    if guessed:
        return guessed
    if sent and sent != "application/octet-stream":
        return sent
    return None


def _walk_components(components: Sequence[JSON] | None) -> Iterator[JSON]:
    for component in components or []:
        yield component
        yield from _walk_components(component.get("components"))
        if isinstance(component.get("component"), dict):  # label (type 18)
            yield from _walk_components([component["component"]])
        if isinstance(component.get("accessory"), dict):  # section (type 9)
            yield from _walk_components([component["accessory"]])


def _walk_with_path(
    components: Sequence[JSON], path: list[str | int]
) -> Iterator[tuple[list[str | int], JSON]]:
    for index, component in enumerate(components or []):
        here = [*path, index]
        yield here, component
        yield from _walk_with_path(component.get("components") or [], [*here, "components"])
        if isinstance(component.get("component"), dict):
            yield from _walk_with_path([component["component"]], [*here, "component"])
        if isinstance(component.get("accessory"), dict):
            yield from _walk_with_path([component["accessory"]], [*here, "accessory"])


def _upload_bounds(component: JSON) -> tuple[int, int]:
    """A file upload's (min_values, max_values); absent or null means Discord's default, 1."""
    low, high = component.get("min_values"), component.get("max_values")
    return (1 if low is None else int(low)), (1 if high is None else int(high))


def _validate_components(components: Sequence[JSON], *, v2: bool, root: str = "components") -> None:
    if not v2 and len(components) > 5:
        raise _invalid_form([root], "BASE_TYPE_MAX_LENGTH", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for path, component in _walk_with_path(components, [root]):
        kind = component.get("type")
        if len(path) == 2 and not v2 and kind != 1:
            raise _invalid_form(
                [*path, "type"], "UNION_TYPE_CHOICES", "Top-level components must be action rows."
            )
        if kind == 1:
            children = component.get("components") or []
            if not 1 <= len(children) <= 5:
                raise _invalid_form(
                    [*path, "components"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 5 in length.",
                )
            if len(children) > 1 and any(c.get("type") in _SELECT_TYPES for c in children):
                raise _invalid_form(
                    [*path, "components"],
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
        custom_id = component.get("custom_id")
        if custom_id is not None:
            if not 1 <= len(str(custom_id)) <= 100:
                raise _invalid_form(
                    [*path, "custom_id"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            if custom_id in seen:
                raise _invalid_form(
                    [*path, "custom_id"],
                    "COMPONENT_CUSTOM_ID_DUPLICATED",
                    "Component custom id cannot be duplicated",
                )
            seen.add(custom_id)
        if kind == 2:
            label = component.get("label")
            if label is not None and len(label) > 80:
                raise _invalid_form(
                    [*path, "label"], "BASE_TYPE_MAX_LENGTH", "Must be 80 or fewer in length."
                )
            if component.get("style") == 5:
                if not component.get("url") or custom_id is not None:
                    raise _invalid_form(
                        [*path, "url"], "BUTTON_COMPONENT_URL_REQUIRED", "A url is required"
                    )
            elif component.get("style") != 6 and custom_id is None:
                raise _invalid_form(
                    [*path, "custom_id"],
                    "BUTTON_COMPONENT_CUSTOM_ID_REQUIRED",
                    "A custom id is required",
                )
        if kind == 3:
            options = component.get("options") or []
            if not 1 <= len(options) <= 25:
                raise _invalid_form(
                    [*path, "options"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 25 in length.",
                )


def _validate_message(payload: JSON, files: Sequence[UploadedFile], *, creating: bool) -> None:
    content = payload.get("content")
    if content is not None and len(str(content)) > 2000:
        raise _invalid_form(["content"], "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        raise _invalid_form(["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    for index, embed in enumerate(embeds):
        if len(embed.get("title") or "") > 256:
            raise _invalid_form(
                ["embeds", index, "title"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 256 or fewer in length.",
            )
        if len(embed.get("description") or "") > 4096:
            raise _invalid_form(
                ["embeds", index, "description"],
                "BASE_TYPE_MAX_LENGTH",
                "Must be 4096 or fewer in length.",
            )
    v2 = bool(int(payload.get("flags") or 0) & FLAG_COMPONENTS_V2)
    components = payload.get("components") or []
    _validate_components(components, v2=v2)
    if v2 and (content or embeds):
        raise _invalid_form(
            ["content"],
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used when using the IS_COMPONENTS_V2 flag",
        )
    has_body = (
        content
        or embeds
        or components
        or files
        or payload.get("sticker_ids")
        or payload.get("poll")
    )
    if creating and not has_body:
        raise DiscordError(400, 50006, "Cannot send an empty message")


class _Snowflakes:
    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        value = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(value, self._last + 1)
        return self._last


def _zstd_stream() -> Callable[[bytes], bytes] | None:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        try:
            from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
        except ImportError:
            return None
        compressor = zstd.ZstdCompressor()
        return lambda raw: compressor.compress(raw, mode=zstd.ZstdCompressor.FLUSH_BLOCK)
    cobj = zstandard.ZstdCompressor().compressobj()
    return lambda raw: cobj.compress(raw) + cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


class _TransportCompressor:
    """Gateway transport compression: one stream per connection, flushed per message."""

    def __init__(self, kind: str | None) -> None:
        self.kind = kind
        self._zlib = zlib.compressobj() if kind == "zlib-stream" else None
        self._zstd = _zstd_stream() if kind == "zstd-stream" else None

    def pack(self, text: str) -> str | bytes:
        raw = text.encode()
        if self._zlib is not None:
            return self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self._zstd is not None:
            return self._zstd(raw)
        return text


class _GatewayConnection:
    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compressor = _TransportCompressor(compress)
        self.session: _GatewaySession | None = None
        self.closed_by_server = False
        self._lock = asyncio.Lock()

    async def close(self, code: int, reason: bytes) -> None:
        self.closed_by_server = True
        await self.ws.close(code=code, message=reason)

    async def send(self, payload: JSON) -> None:
        text = json.dumps(payload)
        async with self._lock:  # the compression stream must see messages in send order
            if self.ws.closed:
                return
            packed = self.compressor.pack(text)
            with contextlib.suppress(ConnectionError, RuntimeError):
                if isinstance(packed, bytes):
                    await self.ws.send_bytes(packed)
                else:
                    await self.ws.send_str(packed)


@dataclass
class _GatewaySession:
    session_id: str
    intents: int
    shard: tuple[int, int] | None
    seq: int = 0
    backlog: list[JSON] = field(default_factory=list)
    connection: _GatewayConnection | None = None
    resumable: bool = True

    @property
    def live(self) -> bool:
        """Connected right now: new events reach it, not only its backlog for a RESUME."""
        return self.resumable and self.connection is not None and not self.connection.ws.closed

    def owns_guild(self, guild_id: int | None) -> bool:
        if self.shard is None:
            return True
        shard_id, shard_count = self.shard
        return ((guild_id or 0) >> 22) % shard_count == shard_id


Handler = Callable[..., Awaitable[web.Response]]


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """Discord's REST API, gateway and CDN on 127.0.0.1, for the real discord.py client."""

    def __init__(
        self,
        *,
        token: str = "fake-discord-bot-token",
        bot_id: int = 1_100_000_000_000_000_001,
        bot_name: str = "LOKIZ",
        application_id: int | None = None,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        heartbeat_interval_ms: int = 41_250,
        interaction_ack_timeout: float | None = 3.0,
        interaction_token_ttl: float = 15 * 60.0,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        shard_count: int = 1,
        strict_commands: bool = True,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.application_id = application_id or bot_id
        self.upload_limit = upload_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_ack_timeout = interaction_ack_timeout
        self.interaction_token_ttl = interaction_token_ttl
        self.allowed_privileged_intents = allowed_privileged_intents
        self.shard_count = shard_count
        self.strict_commands = strict_commands

        self.bot_user: JSON = {
            "id": str(bot_id),
            "username": bot_name,
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "verified": True,
            "mfa_enabled": False,
            "flags": 0,
            "public_flags": 0,
            "locale": "en-US",
            "email": None,
        }
        self.users: dict[int, JSON] = {bot_id: self.bot_user}
        self.locales: dict[int, str] = {}
        self.guilds: dict[int, JSON] = {}
        self.guild_members: dict[int, dict[int, JSON]] = {}
        self.channels: dict[int, JSON] = {}
        self.messages: dict[int, JSON] = {}
        self.deleted_messages: dict[int, JSON] = {}
        self.reactions: list[tuple[str, int, str]] = []  # (PUT|DELETE, message id, emoji)
        self.typing: list[int] = []  # channel ids, one per typing call
        self.global_commands: dict[int, JSON] = {}
        self.guild_commands: dict[int, dict[int, JSON]] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self.calls: list[Call] = []
        self.downloads: list[str] = []  # CDN paths fetched
        self.faults: list[Fault] = []
        self.nonce_window = 300.0  # "a few minutes", as Discord's enforce_nonce
        self.nonce_repeats = 0  # sends answered with the message an earlier nonce posted
        self._nonces: dict[tuple[int, str, str], tuple[int, float]] = {}
        self.rate_limits: list[RateLimitRule] = []
        self.identify_payloads: list[JSON] = []
        self.gateway_received: list[JSON] = []  # every payload the client sent on the gateway
        self.gateway_connects: list[
            dict[str, str]
        ] = []  # query of each gateway connection (v, encoding, compress)
        self.heartbeats = 0
        self.resumes = 0
        self.internal_errors: list[Exception] = []

        self._ids = _Snowflakes()
        self._channel_order: dict[int, list[int]] = {}
        self._blobs: dict[int, _Blob] = {}
        self._by_token: dict[str, FakeInteraction] = {}
        self._sessions: dict[str, _GatewaySession] = {}
        self._connections: set[_GatewayConnection] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self._install_routes()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=1024**3)
        app.router.add_get("/ws", self._handle_gateway)
        app.router.add_get("/", self._handle_gateway)
        app.router.add_get("/attachments/{scope}/{attachment_id}/{filename}", self._handle_cdn)
        app.router.add_get(
            "/ephemeral-attachments/{scope}/{attachment_id}/{filename}", self._handle_cdn
        )
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._handle_api)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for connection in list(self._connections):
            with contextlib.suppress(Exception):
                await connection.close(1001, b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` must be set to."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` must be (as a ``yarl.URL``)."""
        return f"ws://127.0.0.1:{self._port}/ws"

    @contextlib.contextmanager
    def point_discord_py(self) -> Iterator[None]:
        """Point discord.py (process-wide) at this fake; restores the real URLs on exit."""
        import discord.gateway
        import discord.http
        import yarl

        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ------------------------------------------------------------------ world set-up

    def user(
        self,
        user_id: int,
        username: str,
        *,
        locale: str = "en-US",
        bot: bool = False,
        global_name: str | None = None,
    ) -> JSON:
        payload = {
            "id": str(user_id),
            "username": username,
            "discriminator": "0",
            "global_name": global_name,
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
        }
        self.users[user_id] = payload
        self.locales[user_id] = locale
        return copy.deepcopy(payload)

    def guild(
        self, guild_id: int, name: str, *, locale: str = "en-US", premium_tier: int = 0
    ) -> JSON:
        """A guild the bot is in (announced in READY + GUILD_CREATE at the next IDENTIFY)."""
        self.guilds[guild_id] = {
            "id": str(guild_id),
            "name": name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.bot_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": premium_tier,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": locale,
            "features": [],
            "emojis": [],
            "stickers": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "roles": [
                {
                    "id": str(guild_id),
                    "name": "@everyone",
                    "permissions": DEFAULT_PERMISSIONS,
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "icon": None,
                    "unicode_emoji": None,
                    "flags": 0,
                }
            ],
            "joined_at": _now_iso(),
        }
        self.guild_members[guild_id] = {self.bot_id: self._new_member(self.bot_id)}
        return copy.deepcopy(self.guilds[guild_id])

    def channel(
        self,
        guild_id: int,
        channel_id: int,
        name: str | None = None,
        *,
        type: int = 0,
        parent_id: int | None = None,
    ) -> JSON:
        """A guild text channel (type 0) the bot can see."""
        if guild_id not in self.guilds:
            raise KeyError(f"unknown guild {guild_id}: call fake.guild() first")
        position = sum(1 for c in self.channels.values() if c.get("guild_id") == str(guild_id))
        self.channels[channel_id] = {
            "id": str(channel_id),
            "type": type,
            "guild_id": str(guild_id),
            "name": name or f"channel-{channel_id}",
            "position": position,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": str(parent_id) if parent_id else None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        self._channel_order.setdefault(channel_id, [])
        return copy.deepcopy(self.channels[channel_id])

    def member(
        self,
        user_id: int,
        username: str,
        locale: str = "en-US",
        *,
        guild_id: int | None = None,
        bot: bool = False,
    ) -> JSON:
        """A user (with their client locale) who is a member of ``guild_id`` or of every guild so far."""
        user = self.user(user_id, username, locale=locale, bot=bot)
        for gid in [guild_id] if guild_id is not None else list(self.guilds):
            if gid not in self.guilds:
                raise KeyError(f"unknown guild {gid}: call fake.guild() first")
            self.guild_members[gid][user_id] = self._new_member(user_id)
        return user

    def dm(self, user: Any) -> JSON:
        """The DM channel between the bot and ``user`` (created on first use)."""
        user_id = _id_of(user)
        self._ensure_user(user_id)
        for channel in self.channels.values():
            if channel["type"] == 1 and channel["recipients"][0]["id"] == str(user_id):
                return copy.deepcopy(channel)
        channel_id = self._ids.next()
        self.channels[channel_id] = {
            "id": str(channel_id),
            "type": 1,
            "last_message_id": None,
            "flags": 0,
            "recipients": [copy.deepcopy(self.users[user_id])],
        }
        self._channel_order[channel_id] = []
        return copy.deepcopy(self.channels[channel_id])

    def add_attachment(
        self,
        data: bytes | str | Path,
        filename: str | None = None,
        content_type: str | None = None,
        *,
        ephemeral: bool = False,
        **extra: Any,
    ) -> JSON:
        """Store bytes on the fake CDN; returns an attachment payload (url served by this server).

        ``data`` is bytes or a path; ``extra`` is merged into the payload (width, height,
        duration_secs, description...).
        """
        if isinstance(data, bytes | bytearray):
            raw = bytes(data)
            if filename is None:
                raise ValueError("filename is required with raw bytes")
        else:
            path = Path(data)
            raw = path.read_bytes()
            filename = filename or path.name
        attachment = self._store_blob(raw, filename, content_type, scope="0", ephemeral=ephemeral)
        attachment.update(extra)
        return attachment

    def expire_attachment(self, attachment: Any) -> None:
        """Make the CDN answer 404 for this attachment, like an expired signed URL."""
        self._blobs[_id_of(attachment)].expired = True

    # ------------------------------------------------------------------ what users do

    async def dispatch(self, event: str, data: JSON) -> int:
        """Send a raw DISPATCH event to every identified session; returns how many got it."""
        sessions = self._live_sessions()
        for session in sessions:
            await self._send_dispatch(session, event, copy.deepcopy(data))
        return len(sessions)

    async def announce_guild(self, guild_id: int) -> None:
        """GUILD_CREATE for a guild set up after the bot connected (the bot "joins" it)."""
        for session in self._live_sessions():
            if session.owns_guild(guild_id):
                payload = self._guild_create_payload(guild_id, session)
                payload.pop("unavailable")  # a fresh join, not a guild becoming available
                await self._send_dispatch(session, "GUILD_CREATE", payload)

    async def announce_channel(self, channel_id: int) -> None:
        """CHANNEL_CREATE for a guild channel set up after the bot connected."""
        channel = self.channels[channel_id]
        guild_id = self._guild_of(channel_id)
        await self._broadcast("CHANNEL_CREATE", lambda s: copy.deepcopy(channel), guild_id)

    async def slash(
        self,
        user: Any,
        channel: Any,
        name: str,
        options: Sequence[JSON] | Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, Any] | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name`` (``"group sub"`` for subcommands) in ``channel``.

        ``options``: raw option dicts (``{"name", "type", "value"}``) or ``{name: value}``
        (types taken from the registered command). ``attachments``: ``{option name:
        attachment dict from add_attachment() | bytes | path}``.
        """
        channel_id = _id_of(channel)
        guild_id = self._guild_of(channel_id)
        root, *subs = name.split()
        command = self._find_command(root, 1, guild_id)
        option_defs = self._option_defs(command, subs)
        resolved: JSON = {}
        built: list[JSON] = []
        if isinstance(options, Mapping):
            for option_name, value in options.items():
                built.append(
                    self._build_option(option_name, value, option_defs, resolved, guild_id)
                )
        else:
            for raw in options or []:
                built.append(copy.deepcopy(dict(raw)))
                self._resolve_option_value(raw.get("type"), raw.get("value"), resolved, guild_id)
        for option_name, attachment in (attachments or {}).items():
            if not isinstance(attachment, Mapping):
                attachment = self.add_attachment(attachment, ephemeral=True)
            resolved.setdefault("attachments", {})[str(attachment["id"])] = copy.deepcopy(
                dict(attachment)
            )
            built.append(
                {"name": option_name, "type": OPTION_ATTACHMENT, "value": str(attachment["id"])}
            )
        if command is not None and self.strict_commands:
            given = {o["name"] for o in built}
            missing = [
                o["name"] for o in option_defs if o.get("required") and o["name"] not in given
            ]
            if missing:
                raise ValueError(
                    f"/{name}: Discord would not send without required options {missing}"
                )
        for sub in reversed(subs):
            kind = OPTION_SUB_COMMAND if sub == subs[-1] else OPTION_SUB_COMMAND_GROUP
            built = [{"name": sub, "type": kind, "options": built}]
        data: JSON = {
            "id": command["id"] if command else str(self._ids.next()),
            "name": root,
            "type": 1,
        }
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._inject(
            INTERACTION_APPLICATION_COMMAND, user, channel_id, data, locale=locale
        )

    async def message_command(
        self, user: Any, channel: Any, name: str, target_message: Any, *, locale: str | None = None
    ) -> FakeInteraction:
        """A user picks the message context-menu command ``name`` on ``target_message``."""
        channel_id = _id_of(channel)
        command = self._find_command(name, 3, self._guild_of(channel_id))
        message = self._message_or_raise(_id_of(target_message))
        data: JSON = {
            "id": command["id"] if command else str(self._ids.next()),
            "name": name,
            "type": 3,
            "target_id": message["id"],
            "resolved": {"messages": {message["id"]: copy.deepcopy(message)}},
        }
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._inject(
            INTERACTION_APPLICATION_COMMAND, user, channel_id, data, locale=locale
        )

    async def user_command(
        self, user: Any, channel: Any, name: str, target_user: Any, *, locale: str | None = None
    ) -> FakeInteraction:
        """A user picks the user context-menu command ``name`` on ``target_user``."""
        channel_id = _id_of(channel)
        guild_id = self._guild_of(channel_id)
        command = self._find_command(name, 2, guild_id)
        resolved: JSON = {}
        target_id = _id_of(target_user)
        self._resolve_option_value(OPTION_USER, target_id, resolved, guild_id)
        data: JSON = {
            "id": command["id"] if command else str(self._ids.next()),
            "name": name,
            "type": 2,
            "target_id": str(target_id),
            "resolved": resolved,
        }
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._inject(
            INTERACTION_APPLICATION_COMMAND, user, channel_id, data, locale=locale
        )

    async def press(
        self, user: Any, message: Any, label_or_custom_id: str, *, locale: str | None = None
    ) -> FakeInteraction:
        """A user presses the button labelled (or with custom_id) ``label_or_custom_id``."""
        stored = self._message_or_raise(_id_of(message))
        buttons = [c for c in _walk_components(stored.get("components")) if c.get("type") == 2]
        button = next((b for b in buttons if b.get("custom_id") == label_or_custom_id), None)
        button = button or next((b for b in buttons if b.get("label") == label_or_custom_id), None)
        if button is None:
            available = [(b.get("label"), b.get("custom_id")) for b in buttons]
            raise LookupError(
                f"no button {label_or_custom_id!r} on message {stored['id']}; buttons: {available}"
            )
        if button.get("disabled"):
            raise ValueError(f"button {label_or_custom_id!r} is disabled: a user cannot press it")
        if button.get("custom_id") is None:
            raise ValueError(
                f"button {label_or_custom_id!r} is a link/premium button: no interaction"
            )
        data: JSON = {"custom_id": button["custom_id"], "component_type": 2}
        if "id" in button:
            data["id"] = button["id"]
        return await self._inject(
            INTERACTION_MESSAGE_COMPONENT,
            user,
            int(stored["channel_id"]),
            data,
            message=stored,
            locale=locale,
        )

    async def select(
        self,
        user: Any,
        message: Any,
        custom_id: str,
        values: Sequence[Any],
        *,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user picks ``values`` in the select menu ``custom_id`` of ``message``."""
        stored = self._message_or_raise(_id_of(message))
        menu = next(
            (
                c
                for c in _walk_components(stored.get("components"))
                if c.get("type") in _SELECT_TYPES and c.get("custom_id") == custom_id
            ),
            None,
        )
        if menu is None:
            raise LookupError(f"no select {custom_id!r} on message {stored['id']}")
        if menu.get("disabled"):
            raise ValueError(f"select {custom_id!r} is disabled")
        values = [str(v) for v in values]
        low, high = menu.get("min_values", 1), menu.get("max_values", 1)
        if not low <= len(values) <= high:
            raise ValueError(f"select {custom_id!r} takes {low}..{high} values, got {len(values)}")
        if menu["type"] == 3:
            allowed = {o["value"] for o in menu.get("options") or []}
            unknown = [v for v in values if v not in allowed]
            if unknown:
                raise ValueError(
                    f"select {custom_id!r} has no options {unknown}; options: {sorted(allowed)}"
                )
        data: JSON = {"custom_id": custom_id, "component_type": menu["type"], "values": values}
        if menu["type"] in (5, 6, 7, 8):
            resolved: JSON = {}
            guild_id = self._guild_of(int(stored["channel_id"]))
            kind = {5: OPTION_USER, 6: OPTION_ROLE, 7: OPTION_CHANNEL, 8: OPTION_USER}[menu["type"]]
            for value in values:
                self._resolve_option_value(kind, value, resolved, guild_id)
            data["resolved"] = resolved
        return await self._inject(
            INTERACTION_MESSAGE_COMPONENT,
            user,
            int(stored["channel_id"]),
            data,
            message=stored,
            locale=locale,
        )

    async def submit_modal(
        self,
        user: Any,
        custom_id: str,
        values: Mapping[str, Any],
        *,
        interaction: FakeInteraction | None = None,
        locale: str | None = None,
    ) -> FakeInteraction:
        """A user fills the open modal ``custom_id`` with ``{field custom_id: value}`` and submits it.

        A file upload field takes attachment payloads from ``add_attachment`` (one or a list):
        its value becomes their ids, and the attachments go in ``data.resolved.attachments``.
        """
        user_id = _id_of(user)
        opener = interaction
        if opener is None:
            candidates = [
                i
                for i in self.interactions.values()
                if i.modal
                and i.modal.get("custom_id") == custom_id
                and i.user_id == user_id
                and not i.modal_submitted
            ]
            if not candidates:
                raise LookupError(f"no open modal {custom_id!r} for user {user_id}")
            opener = candidates[-1]
        modal = opener.modal or {}
        if modal.get("custom_id") != custom_id:
            raise LookupError(f"interaction {opener.id} did not open modal {custom_id!r}")
        remaining = dict(values)
        uploads: dict[str, JSON] = {}
        components = [
            self._fill_modal_component(c, remaining, uploads) for c in modal.get("components") or []
        ]
        if remaining:
            raise ValueError(f"modal {custom_id!r} has no fields {sorted(remaining)}")
        opener.modal_submitted = True
        data: JSON = {"custom_id": custom_id, "components": components}
        if uploads:
            data["resolved"] = {"attachments": uploads}
        source = self.messages.get(opener.source_message_id or 0)
        return await self._inject(
            INTERACTION_MODAL_SUBMIT,
            user,
            opener.channel_id,
            data,
            message=source,
            locale=locale,
            opener=opener,
        )

    async def post_user_message(
        self,
        user: Any,
        channel: Any,
        content: str = "",
        attachments: Sequence[Any] = (),
        *,
        reply_to: Any = None,
    ) -> JSON:
        """A user posts a message (MESSAGE_CREATE); returns the stored message (full content)."""
        user_id = _id_of(user)
        self._ensure_user(user_id)
        channel_id = _id_of(channel)
        if channel_id not in self.channels:
            raise KeyError(f"unknown channel {channel_id}")
        stored_attachments = []
        for attachment in attachments:
            if not isinstance(attachment, Mapping):
                attachment = self.add_attachment(attachment)
            stored_attachments.append(copy.deepcopy(dict(attachment)))
        guild_id = self._guild_of(channel_id)
        if guild_id is not None:
            self._member_of(guild_id, user_id)
        payload: JSON = {"content": content}
        if reply_to is not None:
            payload["message_reference"] = {"message_id": str(_id_of(reply_to))}
        message = self._create_message(channel_id, self.users[user_id], payload, [])
        message["attachments"] = stored_attachments
        await self._emit_message("MESSAGE_CREATE", message)
        self._notify()
        return copy.deepcopy(message)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int = 429,
        *,
        retry_after: float = 0.2,
        times: int = 1,
        global_: bool = False,
        code: int | None = None,
        message: str | None = None,
        after: bool = False,
        disconnect: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching requests with ``status`` instead of serving them.

        ``after=True`` serves the request first (the message is posted) and then loses
        the answer: it answers ``status`` anyway, or drops the connection (``disconnect``).

        ``path_regex`` is matched with ``re.fullmatch`` against the path without
        ``/api/v10`` and without the query (e.g. ``r"/channels/\\d+/messages"``), or against
        a CDN path (``/attachments/...``). ``method`` may be ``"*"``.
        """
        fault = Fault(
            method.upper(),
            re.compile(path_regex),
            status,
            retry_after,
            times,
            global_,
            code,
            message,
            after=after,
            disconnect=disconnect,
        )
        self.faults.append(fault)
        return fault

    def rate_limit(self, method: str, path_regex: str, *, limit: int, per: float) -> RateLimitRule:
        """Enforce a real bucket: ``limit`` requests per ``per`` seconds on each matching path."""
        rule = RateLimitRule(method.upper(), re.compile(path_regex), limit, per)
        self.rate_limits.append(rule)
        return rule

    def expire_interaction(self, interaction: Any) -> None:
        """End an interaction token's life now (as after 15 minutes)."""
        self.interactions[_id_of_interaction(interaction)].expired = True

    # ------------------------------------------------------------------ gateway control

    async def reconnect_gateway(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        for session in self._live_sessions():
            assert session.connection is not None
            await session.connection.send({"op": 7, "d": None, "s": None, "t": None})

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION to every live session."""
        for session in self._live_sessions():
            session.resumable = resumable
            assert session.connection is not None
            await session.connection.send({"op": 9, "d": resumable, "s": None, "t": None})

    async def drop_gateway(self, code: int = 4000) -> None:
        """Close every gateway socket from the server side with ``code``."""
        for connection in list(self._connections):
            await connection.close(code, b"dropped by test")

    @property
    def connected(self) -> bool:
        return bool(self._live_sessions())

    def live_shards(self) -> list[tuple[int, int] | None]:
        """The shard of every live gateway session (None: an unsharded one)."""
        return [s.shard for s in self._live_sessions()]

    def guilds_sent_to(self, shard: tuple[int, int]) -> set[int]:
        """The guilds a live session of ``shard`` was sent (GUILD_CREATE)."""
        return {int(p["d"]["id"]) for s in self._live_sessions() if s.shard == shard
                for p in s.backlog if p.get("t") == "GUILD_CREATE"}

    async def wait_until_connected(self, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.connected, timeout=timeout)

    # ------------------------------------------------------------------ reading results

    def message(self, message_id: Any) -> JSON:
        return copy.deepcopy(self._message_or_raise(_id_of(message_id)))

    def channel_messages(self, channel: Any, *, include_ephemeral: bool = True) -> list[JSON]:
        """Messages in ``channel``, oldest first, in their current (edited) state."""
        ids = self._channel_order.get(_id_of(channel), [])
        result = [copy.deepcopy(self.messages[mid]) for mid in ids if mid in self.messages]
        if not include_ephemeral:
            result = [m for m in result if not m["flags"] & FLAG_EPHEMERAL]
        return result

    def attachment_bytes(self, attachment: Any) -> bytes:
        """The stored bytes of an attachment (payload dict, id, or its URL)."""
        if isinstance(attachment, str) and "/" in attachment:
            attachment_id = int(attachment.split("?")[0].rstrip("/").split("/")[-2])
        else:
            attachment_id = _id_of(attachment)
        return self._blobs[attachment_id].data

    def interaction_responses(self, interaction: Any) -> list[BotResponse]:
        return list(self.interactions[_id_of_interaction(interaction)].responses)

    def commands(self, guild_id: int | None = None) -> list[JSON]:
        """Registered application commands: global, or of one guild."""
        store = self.global_commands if guild_id is None else self.guild_commands.get(guild_id, {})
        return [copy.deepcopy(c) for c in store.values()]

    def find_calls(self, method: str | None = None, path_regex: str | None = None) -> list[Call]:
        pattern = re.compile(path_regex) if path_regex is not None else None
        return [
            c
            for c in self.calls
            if (method is None or c.method == method.upper())
            and (pattern is None or pattern.fullmatch(c.path))
        ]

    # ------------------------------------------------------------------ waiting

    async def wait_until(self, condition: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until ``condition()`` is truthy (re-checked after every change); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 0.05))

    async def wait_for(
        self, predicate: Callable[[Call], bool], timeout: float = 5.0, *, start: int = 0
    ) -> Call:
        """The first recorded call from index ``start`` on that satisfies ``predicate``."""

        def first() -> Call | None:
            return next((c for c in self.calls[start:] if c.status and predicate(c)), None)

        return await self.wait_until(first, timeout=timeout)

    async def wait_for_response(self, interaction: Any, timeout: float = 5.0) -> BotResponse:
        """The bot's initial callback to ``interaction``."""
        record = self.interactions[_id_of_interaction(interaction)]
        await self.wait_until(lambda: record.acknowledged, timeout=timeout)
        return record.responses[0]

    async def wait_for_message(
        self, channel: Any, predicate: Callable[[JSON], bool] | None = None, timeout: float = 5.0
    ) -> JSON:
        """The newest message in ``channel`` (current state) that satisfies ``predicate``."""

        def newest() -> JSON | None:
            matching = [
                m for m in self.channel_messages(channel) if predicate is None or predicate(m)
            ]
            return matching[-1] if matching else None

        return await self.wait_until(newest, timeout=timeout)

    # ================================================================== internals: HTTP

    def _install_routes(self) -> None:
        cmds = r"/applications/(?P<app_id>\d+)(?:/guilds/(?P<guild_id>\d+))?/commands"
        message = r"/channels/(?P<channel_id>\d+)/messages/(?P<message_id>\d+)"
        webhook_message = (
            r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)/messages/(?P<message_id>@original|\d+)"
        )
        table: list[tuple[str, str, Handler, bool]] = [
            ("GET", r"/users/@me", self._get_me, True),
            ("GET", r"/users/(?P<user_id>\d+)", self._get_user, True),
            ("POST", r"/users/@me/channels", self._create_dm, True),
            ("GET", r"/(?:oauth2/)?applications/@me", self._get_application, True),
            ("GET", r"/gateway", self._get_gateway, False),
            ("GET", r"/gateway/bot", self._get_gateway_bot, True),
            ("GET", cmds, self._list_commands, True),
            ("PUT", cmds, self._overwrite_commands, True),
            ("POST", cmds, self._upsert_command, True),
            ("GET", cmds + r"/(?P<command_id>\d+)", self._get_command, True),
            ("PATCH", cmds + r"/(?P<command_id>\d+)", self._edit_command, True),
            ("DELETE", cmds + r"/(?P<command_id>\d+)", self._delete_command, True),
            ("GET", r"/channels/(?P<channel_id>\d+)", self._get_channel, True),
            ("GET", r"/channels/(?P<channel_id>\d+)/messages", self._list_messages, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/messages", self._post_message, True),
            ("GET", message, self._get_message, True),
            ("PATCH", message, self._edit_channel_message, True),
            ("DELETE", message, self._delete_channel_message, True),
            ("PUT", message + r"/reactions/(?P<emoji>[^/]+)/@me", self._react, True),
            ("DELETE", message + r"/reactions/(?P<emoji>[^/]+)/@me", self._react, True),
            ("POST", r"/channels/(?P<channel_id>\d+)/typing", self._typing, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)", self._get_guild, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/channels", self._get_guild_channels, True),
            ("GET", r"/guilds/(?P<guild_id>\d+)/members/(?P<user_id>\d+)", self._get_member, True),
            (
                "POST",
                r"/interactions/(?P<interaction_id>\d+)/(?P<token>[^/]+)/callback",
                self._callback,
                False,
            ),
            ("POST", r"/webhooks/(?P<app_id>\d+)/(?P<token>[^/]+)", self._execute_webhook, False),
            ("GET", webhook_message, self._get_webhook_message, False),
            ("PATCH", webhook_message, self._edit_webhook_message, False),
            ("DELETE", webhook_message, self._delete_webhook_message, False),
        ]
        self._routes = [(m, re.compile(p), h, auth) for m, p, h, auth in table]

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        files: list[UploadedFile] = []
        if not request.body_exists:
            return None, files
        if request.content_type == "multipart/form-data":
            payload: Any = None
            fields: JSON = {}
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                if part.filename is not None:
                    ctype = part.headers.get("Content-Type", "application/octet-stream")
                    files.append(
                        UploadedFile(
                            part.name or "", part.filename, ctype, bytes(await part.read())
                        )
                    )
                elif part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    fields[part.name or ""] = await part.text()
            if payload is None and fields:
                payload = fields
            return payload, files
        raw = await request.read()
        if not raw:
            return None, files
        try:
            return json.loads(raw), files
        except ValueError:
            return raw.decode(errors="replace"), files

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        call = Call(request.method, path, dict(request.query), None, [], time.monotonic())
        self.calls.append(call)
        try:
            call.json, call.files = await self._read_body(request)
            response = await self._serve(request, call)
        except DiscordError as error:
            response = _json_response(error.body(), status=error.status)
        except (
            Exception
        ) as error:  # a bug in the fake: fail fast and visibly, never as a retried 500
            self.internal_errors.append(error)
            response = _json_response(
                {"message": f"fake-discord internal error: {error!r}", "code": 0}, 400
            )
        call.status = response.status
        self._notify()
        return response

    async def _serve(self, request: web.Request, call: Call) -> web.Response:
        fault_response = self._take_fault(call.method, call.path)
        if fault_response is not None:
            return fault_response
        response = await self._route(request, call)
        lost = self._next_fault(call.method, call.path, after=True)
        if lost is None:
            return response
        call.answer_lost = True
        if lost.disconnect and request.transport is not None:
            request.transport.close()  # carried out, then the connection drops before the answer
        return self._fault_response(lost, call.path)

    async def _route(self, request: web.Request, call: Call) -> web.Response:
        path_matched = False
        for method, pattern, handler, needs_auth in self._routes:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            path_matched = True
            if method != call.method:
                continue
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                raise DiscordError(401, 0, "401: Unauthorized")
            limited, headers = self._apply_rate_limits(call)
            if limited is not None:
                return limited
            if any(f.size > self.upload_limit for f in call.files):
                raise DiscordError(413, 40005, "Request entity too large")
            response = await handler(call, **{k: v for k, v in match.groupdict().items()})
            for key, value in headers.items():
                response.headers.setdefault(key, value)
            return response
        if path_matched:
            raise DiscordError(405, 0, "405: Method Not Allowed")
        raise DiscordError(404, 0, "404: Not Found")

    def _take_fault(self, method: str, path: str, *, after: bool = False) -> web.Response | None:
        fault = self._next_fault(method, path, after=after)
        return None if fault is None else self._fault_response(fault, path)

    def _next_fault(self, method: str, path: str, *, after: bool) -> Fault | None:
        for fault in self.faults:
            if (
                fault.after != after
                or fault.remaining <= 0
                or fault.method not in ("*", method)
                or not fault.pattern.fullmatch(path)
            ):
                continue
            fault.remaining -= 1
            fault.hits += 1
            return fault
        return None

    def _fault_response(self, fault: Fault, path: str) -> web.Response:
        if fault.status == 429:
            return self._too_many_requests(
                fault.retry_after, global_=fault.global_, bucket=path
            )
        reason = _HTTP_REASONS.get(fault.status, "Error")
        default_message = f"{fault.status}: {reason}" if fault.status >= 500 else reason
        body = {"message": fault.message or default_message, "code": fault.code or 0}
        return _json_response(body, status=fault.status)

    def _too_many_requests(self, retry_after: float, *, global_: bool, bucket: str) -> web.Response:
        body: JSON = {
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": global_,
        }
        if global_:
            body["code"] = 0
        headers = {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": self._bucket_hash(bucket),
            "X-RateLimit-Scope": "global" if global_ else "user",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        return _json_response(body, status=429, headers=headers)

    def _bucket_hash(self, path: str) -> str:
        template = re.sub(r"/\d{5,}", "/:id", path)
        return hashlib.md5(template.encode()).hexdigest()

    def _apply_rate_limits(self, call: Call) -> tuple[web.Response | None, dict[str, str]]:
        now = time.monotonic()
        for rule in self.rate_limits:
            if rule.method not in ("*", call.method) or not rule.pattern.fullmatch(call.path):
                continue
            reset_at, used = rule.windows.get(call.path, (0.0, 0))
            if now >= reset_at:
                reset_at, used = now + rule.per, 0
            if used >= rule.limit:
                rule.rejected += 1
                return self._too_many_requests(reset_at - now, global_=False, bucket=call.path), {}
            rule.windows[call.path] = (reset_at, used + 1)
            return None, {
                "X-RateLimit-Limit": str(rule.limit),
                "X-RateLimit-Remaining": str(rule.limit - used - 1),
                "X-RateLimit-Reset": f"{time.time() + reset_at - now:.3f}",
                "X-RateLimit-Reset-After": f"{reset_at - now:.3f}",
                "X-RateLimit-Bucket": self._bucket_hash(call.path),
            }
        return None, {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": self._bucket_hash(call.path),
        }

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.downloads.append(path)
        fault_response = self._take_fault("GET", path)
        if fault_response is not None:
            return fault_response
        blob = (
            self._blobs.get(int(request.match_info["attachment_id"]))
            if request.match_info["attachment_id"].isdigit()
            else None
        )
        if blob is None or blob.expired:
            return web.Response(status=404, text="This content is no longer available.")
        headers = {"Content-Type": blob.content_type or "application/octet-stream"}
        return web.Response(body=blob.data, headers=headers)

    # ------------------------------------------------------------------ REST: identity

    async def _get_me(self, call: Call) -> web.Response:
        return _json_response(self.bot_user)

    async def _get_user(self, call: Call, user_id: str) -> web.Response:
        user = self.users.get(int(user_id))
        if user is None:
            raise DiscordError(404, 10013, "Unknown User")
        return _json_response(user)

    async def _create_dm(self, call: Call) -> web.Response:
        recipient = int((call.json or {}).get("recipient_id", 0))
        if recipient not in self.users:
            raise DiscordError(400, 50007, "Cannot send messages to this user")
        return _json_response(self.dm(recipient))

    async def _get_application(self, call: Call) -> web.Response:
        return _json_response(
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": {
                    "id": "1000",
                    "username": "owner",
                    "discriminator": "0",
                    "avatar": None,
                    "public_flags": 0,
                },
                "team": None,
                "flags": 0,
                "hook": True,
                "bot": self.bot_user,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "tags": [],
                "approximate_guild_count": len(self.guilds),
            }
        )

    async def _get_gateway(self, call: Call) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, call: Call) -> web.Response:
        return _json_response(
            {
                "url": self.gateway_url,
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    # ------------------------------------------------------------------ REST: application commands

    def _command_store(self, app_id: str, guild_id: str | None) -> dict[int, JSON]:
        if int(app_id) != self.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        if guild_id is None:
            return self.global_commands
        if int(guild_id) not in self.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return self.guild_commands.setdefault(int(guild_id), {})

    def _make_command(
        self, body: JSON, store: Mapping[int, JSON], guild_id: str | None, index: int | None = None
    ) -> JSON:
        path: list[str | int] = [] if index is None else [index]
        name = body.get("name")
        kind = body.get("type", 1)
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            raise _invalid_form(
                [*path, "name"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        if kind == 1:
            if name != name.lower() or not re.fullmatch(r"[-_'\w]{1,32}", name):
                raise _invalid_form(
                    [*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if not 1 <= len(body.get("description") or "") <= 100:
                raise _invalid_form(
                    [*path, "description"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            if len(body.get("options") or []) > 25:
                raise _invalid_form(
                    [*path, "options"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
        existing = next(
            (c for c in store.values() if c["name"] == name and c["type"] == kind), None
        )
        command: JSON = {
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            "name_localizations": None,
            "description_localizations": None,
            "options": [],
        }
        command.update(copy.deepcopy(body))
        command.update(
            {
                "id": existing["id"] if existing else str(self._ids.next()),
                "application_id": str(self.application_id),
                "version": str(self._ids.next()),
                "type": kind,
                "description": body.get("description") or "",
            }
        )
        if guild_id is not None:
            command["guild_id"] = guild_id
        return command

    async def _list_commands(self, call: Call, app_id: str, guild_id: str | None) -> web.Response:
        return _json_response(list(self._command_store(app_id, guild_id).values()))

    async def _overwrite_commands(
        self, call: Call, app_id: str, guild_id: str | None
    ) -> web.Response:
        store = self._command_store(app_id, guild_id)
        bodies = call.json or []
        if not isinstance(bodies, list) or len(bodies) > 100:
            raise _invalid_form([], "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        commands = [
            self._make_command(body, store, guild_id, index) for index, body in enumerate(bodies)
        ]
        keys = [(c["name"], c["type"]) for c in commands]
        if len(set(keys)) != len(keys):
            raise _invalid_form(
                [],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        store.clear()
        store.update({int(c["id"]): c for c in commands})
        return _json_response(commands)

    async def _upsert_command(self, call: Call, app_id: str, guild_id: str | None) -> web.Response:
        store = self._command_store(app_id, guild_id)
        command = self._make_command(call.json or {}, store, guild_id)
        created = int(command["id"]) not in store
        store[int(command["id"])] = command
        return _json_response(command, status=201 if created else 200)

    def _command_or_raise(self, store: Mapping[int, JSON], command_id: str) -> JSON:
        command = store.get(int(command_id))
        if command is None:
            raise DiscordError(404, 10063, "Unknown application command")
        return command

    async def _get_command(
        self, call: Call, app_id: str, guild_id: str | None, command_id: str
    ) -> web.Response:
        return _json_response(
            self._command_or_raise(self._command_store(app_id, guild_id), command_id)
        )

    async def _edit_command(
        self, call: Call, app_id: str, guild_id: str | None, command_id: str
    ) -> web.Response:
        store = self._command_store(app_id, guild_id)
        command = self._command_or_raise(store, command_id)
        command.update(copy.deepcopy(call.json or {}))
        command["version"] = str(self._ids.next())
        return _json_response(command)

    async def _delete_command(
        self, call: Call, app_id: str, guild_id: str | None, command_id: str
    ) -> web.Response:
        store = self._command_store(app_id, guild_id)
        self._command_or_raise(store, command_id)
        del store[int(command_id)]
        return _no_content()

    # ------------------------------------------------------------------ REST: channels and messages

    def _channel_or_raise(self, channel_id: str | int) -> JSON:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        return channel

    def _visible_message(self, channel_id: str, message_id: str) -> JSON:
        self._channel_or_raise(channel_id)
        message = self.messages.get(int(message_id))
        if (
            message is None
            or message["channel_id"] != channel_id
            or message["flags"] & FLAG_EPHEMERAL
        ):
            raise DiscordError(404, 10008, "Unknown Message")
        return message

    async def _get_channel(self, call: Call, channel_id: str) -> web.Response:
        return _json_response(self._channel_or_raise(channel_id))

    async def _list_messages(self, call: Call, channel_id: str) -> web.Response:
        self._channel_or_raise(channel_id)
        limit = max(1, min(100, int(call.query.get("limit", 50))))
        found = [
            m for m in self.channel_messages(int(channel_id)) if not m["flags"] & FLAG_EPHEMERAL
        ]
        if "before" in call.query:
            found = [m for m in found if int(m["id"]) < int(call.query["before"])]
        if "after" in call.query:
            found = [m for m in found if int(m["id"]) > int(call.query["after"])]
            return _json_response(list(reversed(found[:limit])))
        return _json_response(list(reversed(found[-limit:])))

    async def _post_message(self, call: Call, channel_id: str) -> web.Response:
        self._channel_or_raise(channel_id)
        payload = call.json or {}
        _validate_message(payload, call.files, creating=True)
        nonce = payload.get("nonce")
        key = (int(channel_id), str(self.bot_user["id"]), str(nonce))
        if nonce is not None and payload.get("enforce_nonce"):
            seen = self._nonces.get(key)
            if seen is not None and time.monotonic() - seen[1] < self.nonce_window:
                if seen[0] in self.deleted_messages:
                    raise DiscordError(404, 10008, "Unknown Message")
                if seen[0] in self.messages:
                    self.nonce_repeats += 1
                    return _json_response(self.messages[seen[0]])  # no second message
        message = self._create_message(int(channel_id), self.bot_user, payload, call.files)
        if nonce is not None:
            message["nonce"] = nonce
            self._nonces[key] = (int(message["id"]), time.monotonic())
        await self._emit_message("MESSAGE_CREATE", message)
        return _json_response(message)

    async def _get_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        return _json_response(self._visible_message(channel_id, message_id))

    async def _edit_channel_message(
        self, call: Call, channel_id: str, message_id: str
    ) -> web.Response:
        message = self._visible_message(channel_id, message_id)
        if message["author"]["id"] != str(self.bot_id) or message.get("webhook_id"):
            raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
        payload = call.json or {}
        _validate_message(payload, call.files, creating=False)
        self._apply_edit(message, payload, call.files)
        await self._emit_message("MESSAGE_UPDATE", message)
        return _json_response(message)

    async def _delete_channel_message(
        self, call: Call, channel_id: str, message_id: str
    ) -> web.Response:
        message = self._visible_message(channel_id, message_id)
        await self._delete_message(message)
        return _no_content()

    async def _react(
        self, call: Call, channel_id: str, message_id: str, emoji: str
    ) -> web.Response:
        self._visible_message(channel_id, message_id)
        self.reactions.append((call.method, int(message_id), emoji))
        return _no_content()

    async def _typing(self, call: Call, channel_id: str) -> web.Response:
        self._channel_or_raise(channel_id)
        self.typing.append(int(channel_id))
        return _no_content()

    async def _get_guild(self, call: Call, guild_id: str) -> web.Response:
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise DiscordError(404, 10004, "Unknown Guild")
        return _json_response({k: v for k, v in guild.items() if k != "joined_at"})

    async def _get_guild_channels(self, call: Call, guild_id: str) -> web.Response:
        if int(guild_id) not in self.guilds:
            raise DiscordError(404, 10004, "Unknown Guild")
        return _json_response([c for c in self.channels.values() if c.get("guild_id") == guild_id])

    async def _get_member(self, call: Call, guild_id: str, user_id: str) -> web.Response:
        member = self.guild_members.get(int(guild_id), {}).get(int(user_id))
        if member is None:
            raise DiscordError(404, 10007, "Unknown Member")
        return _json_response(member)

    # ------------------------------------------------------------------ REST: interactions

    async def _callback(self, call: Call, interaction_id: str, token: str) -> web.Response:
        record = self.interactions.get(int(interaction_id))
        if record is None or record.token != token or record.expired:
            raise DiscordError(404, 10062, "Unknown interaction")
        if record.acknowledged:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        timeout = self.interaction_ack_timeout
        if timeout is not None and time.monotonic() - record.created_at > timeout:
            raise DiscordError(404, 10062, "Unknown interaction")
        body = call.json or {}
        callback_type = body.get("type")
        data = body.get("data") or {}
        if callback_type not in _ALLOWED_CALLBACKS.get(record.type, set()) or (
            callback_type in (6, 7) and record.source_message_id is None
        ):
            raise _invalid_form(
                ["type"],
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Interaction response type is invalid",
            )
        resource: JSON = {"type": callback_type}
        info: JSON = {"id": str(record.id), "type": record.type}
        message_id: int | None = None
        if callback_type == CALLBACK_CHANNEL_MESSAGE:
            _validate_message(data, call.files, creating=True)
            flags = int(data.get("flags") or 0) & (_SETTABLE_FLAGS | FLAG_EPHEMERAL)
            message = self._create_interaction_message(record, data, call.files, flags)
            message_id = record.original_message_id = int(message["id"])
            resource["message"] = message
            info.update(
                response_message_id=message["id"],
                response_message_loading=False,
                response_message_ephemeral=bool(flags & FLAG_EPHEMERAL),
            )
            await self._emit_message("MESSAGE_CREATE", message)
        elif callback_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            flags = FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL)
            message = self._create_interaction_message(record, {}, [], flags)
            message_id = record.original_message_id = int(message["id"])
            info.update(
                response_message_id=message["id"],
                response_message_loading=True,
                response_message_ephemeral=bool(flags & FLAG_EPHEMERAL),
            )
            await self._emit_message("MESSAGE_CREATE", message)
        elif callback_type == CALLBACK_DEFERRED_UPDATE_MESSAGE:
            message_id = record.original_message_id = record.source_message_id
        elif callback_type == CALLBACK_UPDATE_MESSAGE:
            assert record.source_message_id is not None
            message = self._message_or_raise(record.source_message_id)
            _validate_message(data, call.files, creating=False)
            self._apply_edit(message, data, call.files)
            message_id = record.original_message_id = record.source_message_id
            resource["message"] = message
            info.update(
                response_message_id=message["id"],
                response_message_loading=False,
                response_message_ephemeral=bool(message["flags"] & FLAG_EPHEMERAL),
            )
            await self._emit_message("MESSAGE_UPDATE", message)
        elif callback_type == CALLBACK_MODAL:
            self._validate_modal(data)
            record.modal = copy.deepcopy(data)
        elif callback_type == CALLBACK_AUTOCOMPLETE_RESULT:
            record.autocomplete_choices = copy.deepcopy(data.get("choices") or [])
        record.callback_type = callback_type
        record.responses.append(
            BotResponse("callback", callback_type, copy.deepcopy(data), call.files, message_id)
        )
        if call.query.get("with_response", "").lower() in ("1", "true"):
            return _json_response({"interaction": info, "resource": resource})
        return _no_content()

    def _validate_modal(self, data: JSON) -> None:
        custom_id = data.get("custom_id") or ""
        if not 1 <= len(custom_id) <= 100:
            raise _invalid_form(
                ["data", "custom_id"],
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        if not 1 <= len(data.get("title") or "") <= 45:
            raise _invalid_form(
                ["data", "title"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."
            )
        components = data.get("components") or []
        if not 1 <= len(components) <= 5:
            raise _invalid_form(
                ["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )
        _validate_components(components, v2=True, root="components")
        for path, component in _walk_with_path(components, ["components"]):
            if component.get("type") == COMPONENT_LABEL:
                inner = component.get("component") or {}
                if inner.get("type") == COMPONENT_FILE_UPLOAD:
                    low, high = _upload_bounds(inner)
                    if not (0 <= low <= 10 and 1 <= high <= 10 and low <= high):
                        raise _invalid_form([*path, "component", "max_values"], "BASE_TYPE_BAD_VALUE",
                                            "File uploads take 0..10 files (min ≤ max).")
            elif component.get("type") == COMPONENT_FILE_UPLOAD and path[-2:-1] != ["component"]:
                raise _invalid_form([*path, "type"], "UNION_TYPE_CHOICES",
                                    "A file upload must be inside a label.")

    def _webhook_interaction(self, app_id: str, token: str) -> FakeInteraction:
        record = self._by_token.get(token)
        if int(app_id) != self.application_id or record is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        if record.expired or time.monotonic() - record.created_at > self.interaction_token_ttl:
            raise DiscordError(401, 50027, "Invalid Webhook Token")
        if not record.acknowledged:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return record

    def _webhook_target(self, record: FakeInteraction, message_id: str) -> tuple[JSON, bool]:
        if message_id == "@original":
            target = record.original_message_id
            if target is None or target not in self.messages:
                raise DiscordError(404, 10008, "Unknown Message")
            return self.messages[target], True
        if int(message_id) == record.original_message_id or int(message_id) in record.followup_ids:
            if int(message_id) in self.messages:
                return self.messages[int(message_id)], int(message_id) == record.original_message_id
        raise DiscordError(404, 10008, "Unknown Message")

    async def _execute_webhook(self, call: Call, app_id: str, token: str) -> web.Response:
        record = self._webhook_interaction(app_id, token)
        payload = call.json or {}
        original = self.messages.get(record.original_message_id or 0)
        if (
            record.callback_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original["flags"] & FLAG_LOADING
        ):
            # Discord: the first follow-up after a "thinking" defer edits the loading message;
            # its ephemeral flag is ignored (the defer's choice stands).
            _validate_message(payload, call.files, creating=True)
            self._apply_edit(original, payload, call.files)
            original["flags"] &= ~FLAG_LOADING
            message = original
            await self._emit_message("MESSAGE_UPDATE", message)
        else:
            _validate_message(payload, call.files, creating=True)
            flags = int(payload.get("flags") or 0) & (_SETTABLE_FLAGS | FLAG_EPHEMERAL)
            message = self._create_interaction_message(
                record, payload, call.files, flags, followup=True
            )
            record.followup_ids.append(int(message["id"]))
            await self._emit_message("MESSAGE_CREATE", message)
        record.responses.append(
            BotResponse("followup", None, copy.deepcopy(payload), call.files, int(message["id"]))
        )
        if call.query.get("wait", "").lower() in ("1", "true"):
            return _json_response(message)
        return _no_content()

    async def _get_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        record = self._webhook_interaction(app_id, token)
        message, _ = self._webhook_target(record, message_id)
        return _json_response(message)

    async def _edit_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        record = self._webhook_interaction(app_id, token)
        message, is_original = self._webhook_target(record, message_id)
        payload = call.json or {}
        _validate_message(payload, call.files, creating=False)
        self._apply_edit(message, payload, call.files)
        message["flags"] &= ~FLAG_LOADING
        kind = "edit_original" if is_original else "edit_followup"
        record.responses.append(
            BotResponse(kind, None, copy.deepcopy(payload), call.files, int(message["id"]))
        )
        await self._emit_message("MESSAGE_UPDATE", message)
        return _json_response(message)

    async def _delete_webhook_message(
        self, call: Call, app_id: str, token: str, message_id: str
    ) -> web.Response:
        record = self._webhook_interaction(app_id, token)
        message, is_original = self._webhook_target(record, message_id)
        kind = "delete_original" if is_original else "delete_followup"
        record.responses.append(BotResponse(kind, None, {}, [], int(message["id"])))
        await self._delete_message(message)
        return _no_content()

    # ------------------------------------------------------------------ message store

    def _message_or_raise(self, message_id: int) -> JSON:
        message = self.messages.get(message_id)
        if message is None:
            raise LookupError(f"unknown message {message_id}")
        return message

    def _create_message(
        self,
        channel_id: int,
        author: JSON,
        payload: JSON,
        files: Sequence[UploadedFile],
        *,
        msg_type: int = 0,
        flags: int = 0,
        extra: JSON | None = None,
    ) -> JSON:
        message_id = self._ids.next()
        message: JSON = {
            "id": str(message_id),
            "channel_id": str(channel_id),
            "author": copy.deepcopy(author),
            "content": "",
            "timestamp": _now_iso(),
            "edited_timestamp": None,
            "tts": bool(payload.get("tts", False)),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": [],
            "components": [],
            "pinned": False,
            "type": msg_type,
            "flags": flags,
        }
        message.update(extra or {})
        reference = payload.get("message_reference")
        if reference and reference.get("message_id"):
            target = self.messages.get(int(reference["message_id"]))
            if target is None:
                if reference.get("fail_if_not_exists", True):
                    raise _invalid_form(
                        ["message_reference"],
                        "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                        "Unknown message",
                    )
            else:
                message["type"] = 19
                message["message_reference"] = {
                    "type": 0,
                    "message_id": target["id"],
                    "channel_id": target["channel_id"],
                    **(
                        {"guild_id": str(gid)}
                        if (gid := self._guild_of(int(target["channel_id"])))
                        else {}
                    ),
                }
                message["referenced_message"] = {
                    k: v for k, v in target.items() if k != "referenced_message"
                }
        self._apply_fields(message, payload, files)
        self.messages[message_id] = message
        self._channel_order.setdefault(channel_id, []).append(message_id)
        self.channels[channel_id]["last_message_id"] = str(message_id)
        return message

    def _create_interaction_message(
        self,
        record: FakeInteraction,
        payload: JSON,
        files: Sequence[UploadedFile],
        flags: int,
        *,
        followup: bool = False,
    ) -> JSON:
        if record.type == INTERACTION_APPLICATION_COMMAND:
            msg_type = 20 if record.data.get("type", 1) == 1 else 23
        else:
            msg_type = 0
        metadata: JSON = {
            "id": str(record.id),
            "type": record.type,
            "user": copy.deepcopy(self.users[record.user_id]),
            "authorizing_integration_owners": record.payload["authorizing_integration_owners"],
        }
        if record.type == INTERACTION_APPLICATION_COMMAND:
            metadata["name"] = record.data.get("name")
            metadata["command_type"] = record.data.get("type", 1)
            if record.data.get("type") == 3:
                metadata["target_message_id"] = record.data.get("target_id")
        if record.source_message_id is not None:
            metadata["interacted_message_id"] = str(record.source_message_id)
        if followup and record.original_message_id is not None:
            metadata["original_response_message_id"] = str(record.original_message_id)
        extra = {
            "webhook_id": str(self.application_id),
            "application_id": str(self.application_id),
            "interaction_metadata": metadata,
        }
        return self._create_message(
            record.channel_id,
            self.bot_user,
            payload,
            files,
            msg_type=msg_type,
            flags=flags,
            extra=extra,
        )

    def _apply_fields(self, message: JSON, payload: JSON, files: Sequence[UploadedFile]) -> None:
        if "content" in payload:
            content = payload["content"]
            message["content"] = "" if content is None else str(content)
            mentioned = {int(m) for m in re.findall(r"<@!?(\d+)>", message["content"])}
            message["mentions"] = [
                copy.deepcopy(self.users[u]) for u in mentioned if u in self.users
            ]
        if "embeds" in payload:
            message["embeds"] = [
                {"type": "rich", **copy.deepcopy(e)} for e in payload["embeds"] or []
            ]
        if "components" in payload:
            message["components"] = self._number_components(
                copy.deepcopy(payload["components"] or [])
            )
        if payload.get("flags") is not None:
            message["flags"] = (message["flags"] & ~_SETTABLE_FLAGS) | (
                int(payload["flags"]) & _SETTABLE_FLAGS
            )
        if "attachments" in payload or files:
            message["attachments"] = self._resolve_attachments(
                message, payload.get("attachments"), files
            )
        if "poll" in payload:
            message["poll"] = copy.deepcopy(payload["poll"])
        self._resolve_attachment_urls(message)

    def _apply_edit(self, message: JSON, payload: JSON, files: Sequence[UploadedFile]) -> None:
        self._apply_fields(message, payload, files)
        message["edited_timestamp"] = _now_iso()

    def _resolve_attachments(
        self, message: JSON, listed: Sequence[JSON] | None, files: Sequence[UploadedFile]
    ) -> list[JSON]:
        existing = {a["id"]: a for a in message["attachments"]}
        uploads: dict[int, UploadedFile] = {}
        for position, upload in enumerate(files):
            found = re.fullmatch(r"files\[(\d+)\]|file(\d*)", upload.field)
            index = int(next((g for g in found.groups() if g), position)) if found else position
            uploads[index] = upload
        scope = message["channel_id"]
        if listed is None:
            return list(existing.values()) + [
                self._store_upload(f, scope, {}) for f in uploads.values()
            ]
        result: list[JSON] = []
        used: set[int] = set()
        for position, entry in enumerate(listed):
            key = str(entry.get("id"))
            if key in existing:
                kept = dict(existing[key])
                if entry.get("description") is not None:
                    kept["description"] = entry["description"]
                result.append(kept)
            elif key.isdigit() and int(key) in uploads:
                result.append(self._store_upload(uploads[int(key)], scope, entry))
                used.add(int(key))
            else:
                raise _invalid_form(
                    ["attachments", position, "id"], "ATTACHMENT_NOT_FOUND", "Unknown attachment"
                )
        result.extend(self._store_upload(f, scope, {}) for i, f in uploads.items() if i not in used)
        return result

    def _store_upload(self, upload: UploadedFile, scope: str, entry: JSON) -> JSON:
        filename = entry.get("filename") or upload.filename
        attachment = self._store_blob(
            upload.data, filename, _content_type_for(filename, upload.content_type), scope=scope
        )
        if entry.get("description"):
            attachment["description"] = entry["description"]
        return attachment

    def _store_blob(
        self,
        data: bytes,
        filename: str,
        content_type: str | None,
        *,
        scope: str,
        ephemeral: bool = False,
    ) -> JSON:
        filename = re.sub(r"\s", "_", filename)  # Discord does this to uploaded names
        content_type = content_type or _content_type_for(filename, None)
        attachment_id = self._ids.next()
        self._blobs[attachment_id] = _Blob(data, content_type, filename)
        prefix = "ephemeral-attachments" if ephemeral else "attachments"
        url = f"{self.base_url}/{prefix}/{scope}/{attachment_id}/{quote(filename)}"
        attachment: JSON = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
        }
        if content_type:
            attachment["content_type"] = content_type
        if ephemeral:
            attachment["ephemeral"] = True
        return attachment

    def _resolve_attachment_urls(self, message: JSON) -> None:
        by_name = {a["filename"]: a["url"] for a in message["attachments"]}

        def fix(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if isinstance(value, str) and value.startswith("attachment://"):
                        node[key] = by_name.get(value.removeprefix("attachment://"), value)
                    else:
                        fix(value)
            elif isinstance(node, list):
                for item in node:
                    fix(item)

        fix(message["embeds"])
        fix(message["components"])

    def _number_components(self, components: list[JSON]) -> list[JSON]:
        used = {c["id"] for c in _walk_components(components) if isinstance(c.get("id"), int)}
        counter = 0
        for component in _walk_components(components):
            if "id" not in component or component["id"] is None:
                counter += 1
                while counter in used:
                    counter += 1
                component["id"] = counter
        return components

    async def _delete_message(self, message: JSON) -> None:
        message_id = int(message["id"])
        channel_id = int(message["channel_id"])
        self.deleted_messages[message_id] = self.messages.pop(message_id)
        with contextlib.suppress(ValueError):
            self._channel_order[channel_id].remove(message_id)
        if not message["flags"] & FLAG_EPHEMERAL:
            guild_id = self._guild_of(channel_id)
            data: JSON = {"id": message["id"], "channel_id": message["channel_id"]}
            if guild_id:
                data["guild_id"] = str(guild_id)
            needed = INTENT_GUILD_MESSAGES if guild_id else INTENT_DIRECT_MESSAGES
            await self._broadcast(
                "MESSAGE_DELETE", lambda s: data if s.intents & needed else None, guild_id
            )

    async def _emit_message(self, event: str, message: JSON) -> None:
        if message["flags"] & FLAG_EPHEMERAL:
            return  # Discord never sends ephemeral messages over the gateway
        channel_id = int(message["channel_id"])
        guild_id = self._guild_of(channel_id)
        needed = INTENT_GUILD_MESSAGES if guild_id else INTENT_DIRECT_MESSAGES
        author_id = int(message["author"]["id"])
        mentions_bot = any(m["id"] == str(self.bot_id) for m in message.get("mentions", []))

        def data_for(session: _GatewaySession) -> JSON | None:
            if not session.intents & needed:
                return None
            data = copy.deepcopy(message)
            if guild_id:
                data["guild_id"] = str(guild_id)
                member = self.guild_members.get(guild_id, {}).get(author_id)
                if member is not None and not message.get("webhook_id"):
                    data["member"] = {k: v for k, v in member.items() if k != "user"}
            hidden = (
                guild_id is not None
                and not session.intents & INTENT_MESSAGE_CONTENT
                and author_id != self.bot_id
                and not mentions_bot
            )
            if hidden:
                data.update(content="", embeds=[], attachments=[], components=[])
                data.pop("poll", None)
            return data

        await self._broadcast(event, data_for, guild_id)

    # ------------------------------------------------------------------ injection helpers

    def _ensure_user(self, user_id: int) -> None:
        if user_id not in self.users:
            self.user(user_id, f"user{user_id}")

    def _guild_of(self, channel_id: int) -> int | None:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise KeyError(f"unknown channel {channel_id}: call fake.channel() or fake.dm() first")
        guild_id = channel.get("guild_id")
        return int(guild_id) if guild_id else None

    def _new_member(self, user_id: int) -> JSON:
        return {
            "user": copy.deepcopy(self.users[user_id]),
            "nick": None,
            "avatar": None,
            "banner": None,
            "roles": [],
            "joined_at": _now_iso(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }

    def _member_of(self, guild_id: int, user_id: int) -> JSON:
        self._ensure_user(user_id)
        members = self.guild_members.setdefault(guild_id, {})
        if user_id not in members:
            members[user_id] = self._new_member(user_id)
        return copy.deepcopy(members[user_id])

    def _find_command(self, name: str, kind: int, guild_id: int | None) -> JSON | None:
        stores = [self.guild_commands.get(guild_id, {})] if guild_id else []
        stores.append(self.global_commands)
        for store in stores:
            for command in store.values():
                if command["name"] == name and command["type"] == kind:
                    return command
        if self.strict_commands:
            registered = sorted({c["name"] for s in stores for c in s.values()})
            raise LookupError(
                f"command {name!r} (type {kind}) is not registered here, so no user can run it "
                f"(did the bot sync its command tree?); registered: {registered}"
            )
        return None

    def _option_defs(self, command: JSON | None, subs: Sequence[str]) -> list[JSON]:
        options: list[JSON] = list((command or {}).get("options") or [])
        for sub in subs:
            found = next((o for o in options if o["name"] == sub and o["type"] in (1, 2)), None)
            if found is None:
                if command is not None and self.strict_commands:
                    raise LookupError(f"/{command['name']} has no subcommand {sub!r}")
                return []
            options = list(found.get("options") or [])
        return options

    def _build_option(
        self, name: str, value: Any, defs: Sequence[JSON], resolved: JSON, guild_id: int | None
    ) -> JSON:
        definition = next((d for d in defs if d["name"] == name), None)
        if definition is None:
            if defs and self.strict_commands:
                raise LookupError(f"no option {name!r}; options: {[d['name'] for d in defs]}")
            kind = (
                OPTION_BOOLEAN
                if isinstance(value, bool)
                else OPTION_INTEGER
                if isinstance(value, int)
                else OPTION_NUMBER
                if isinstance(value, float)
                else OPTION_STRING
            )
        else:
            kind = definition["type"]
        if kind == OPTION_ATTACHMENT:
            attachment = (
                value if isinstance(value, Mapping) else self.add_attachment(value, ephemeral=True)
            )
            resolved.setdefault("attachments", {})[str(attachment["id"])] = copy.deepcopy(
                dict(attachment)
            )
            return {"name": name, "type": kind, "value": str(attachment["id"])}
        if kind in (OPTION_USER, OPTION_CHANNEL, OPTION_ROLE):
            value = str(_id_of(value))
        self._resolve_option_value(kind, value, resolved, guild_id)
        return {"name": name, "type": kind, "value": value}

    def _resolve_option_value(
        self, kind: Any, value: Any, resolved: JSON, guild_id: int | None
    ) -> None:
        if kind == OPTION_USER:
            user_id = int(value)
            self._ensure_user(user_id)
            resolved.setdefault("users", {})[str(user_id)] = copy.deepcopy(self.users[user_id])
            if guild_id:
                member = self._member_of(guild_id, user_id)
                member.pop("user", None)
                member["permissions"] = DEFAULT_PERMISSIONS
                resolved.setdefault("members", {})[str(user_id)] = member
        elif kind == OPTION_CHANNEL and int(value) in self.channels:
            channel = self.channels[int(value)]
            resolved.setdefault("channels", {})[str(value)] = {
                "id": channel["id"],
                "type": channel["type"],
                "name": channel.get("name"),
                "permissions": DEFAULT_PERMISSIONS,
            }
        elif kind == OPTION_ROLE and guild_id:
            roles = {r["id"]: r for r in self.guilds[guild_id]["roles"]}
            if str(value) in roles:
                resolved.setdefault("roles", {})[str(value)] = copy.deepcopy(roles[str(value)])

    def _fill_modal_component(
        self, component: JSON, remaining: dict[str, Any], uploads: dict[str, JSON]
    ) -> JSON:
        kind = component.get("type")
        if kind == 1:
            return {
                "type": 1,
                "components": [
                    self._fill_modal_component(c, remaining, uploads)
                    for c in component.get("components") or []
                ],
            }
        if kind == 18:
            return {
                "type": 18,
                "id": component.get("id"),
                "component": self._fill_modal_component(component["component"], remaining, uploads),
            }
        custom_id = component.get("custom_id")
        filled: JSON = {"type": kind, "custom_id": custom_id}
        if "id" in component:
            filled["id"] = component["id"]
        if kind == 4:
            value = str(remaining.pop(custom_id, component.get("value") or ""))
            if component.get("required", True) and not value:
                raise ValueError(f"modal field {custom_id!r} is required")
            if value and not component.get("min_length", 0) <= len(value) <= component.get(
                "max_length", 4000
            ):
                raise ValueError(
                    f"modal field {custom_id!r} must be {component.get('min_length', 0)}.."
                    f"{component.get('max_length', 4000)} characters"
                )
            filled["value"] = value
        elif kind in _SELECT_TYPES:
            raw = remaining.pop(custom_id, [])
            filled["values"] = [str(v) for v in ([raw] if isinstance(raw, str | int) else raw)]
        elif kind == COMPONENT_FILE_UPLOAD:
            # Values are attachment ids; the attachments themselves travel in data.resolved.
            raw = remaining.pop(custom_id, [])
            files = [raw] if isinstance(raw, Mapping) else list(raw)
            low, high = _upload_bounds(component)
            if component.get("required", True) and not files:
                raise ValueError(f"modal file upload {custom_id!r} is required")
            if files and not low <= len(files) <= high:
                raise ValueError(f"modal file upload {custom_id!r} takes {low}..{high} files")
            filled["values"] = [str(_id_of(f)) for f in files]
            for attachment in files:
                uploads[str(_id_of(attachment))] = copy.deepcopy(dict(attachment))
        return filled

    async def _inject(
        self,
        interaction_type: int,
        user: Any,
        channel_id: int,
        data: JSON,
        *,
        message: JSON | None = None,
        locale: str | None = None,
        opener: FakeInteraction | None = None,
    ) -> FakeInteraction:
        if not self._live_sessions():
            raise RuntimeError("no bot session is connected to the fake gateway")
        user_id = _id_of(user)
        self._ensure_user(user_id)
        channel = self.channels[channel_id]
        guild_id = self._guild_of(channel_id)
        interaction_id = self._ids.next()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": interaction_type,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "channel": copy.deepcopy(channel),
            "locale": locale or self.locales.get(user_id, "en-US"),
            "app_permissions": DEFAULT_PERMISSIONS,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild_id) if guild_id else "0"},
            "context": 0 if guild_id else 1,
            "attachment_size_limit": self.upload_limit,
        }
        if guild_id:
            guild = self.guilds[guild_id]
            member = self._member_of(guild_id, user_id)
            member["permissions"] = DEFAULT_PERMISSIONS
            payload.update(
                guild_id=str(guild_id),
                guild={"id": str(guild_id), "locale": guild["preferred_locale"], "features": []},
                guild_locale=guild["preferred_locale"],
                member=member,
            )
        else:
            payload["user"] = copy.deepcopy(self.users[user_id])
        if message is not None:
            payload["message"] = copy.deepcopy(message)
        record = FakeInteraction(
            id=interaction_id,
            token=token,
            type=interaction_type,
            payload=payload,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            created_at=time.monotonic(),
            source_message_id=int(message["id"]) if message is not None else None,
            opener=opener,
        )
        self.interactions[interaction_id] = record
        self._by_token[token] = record
        for session in await self._broadcast(
            "INTERACTION_CREATE", lambda s: copy.deepcopy(payload), guild_id, first_only=True
        ):
            record.session_id, record.shard = session.session_id, session.shard
        self._notify()
        return record

    # ================================================================== internals: gateway

    def _live_sessions(self) -> list[_GatewaySession]:
        return [s for s in self._sessions.values() if s.live]

    async def _send_dispatch(self, session: _GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.backlog.append(payload)
        if session.connection is not None:
            await session.connection.send(payload)

    async def _broadcast(
        self,
        event: str,
        data_for: Callable[[_GatewaySession], JSON | None],
        guild_id: int | None,
        *,
        first_only: bool = False,
    ) -> list[_GatewaySession]:
        """Send ``event`` to the sessions that own ``guild_id`` (DMs: shard 0); returns them.

        Every resumable session gets it: a live one over its socket, one whose socket died
        (the process was killed, the network dropped) only in its backlog, replayed if it
        RESUMEs. With ``first_only`` (an interaction goes to one session) it is the most
        recently IDENTIFY'd live session; a dead one holds it only if no live one can take it.
        """
        sessions = [s for s in self._sessions.values() if s.resumable and s.owns_guild(guild_id)]
        if first_only:  # _sessions is in IDENTIFY order; the sort is stable
            sessions = sorted(reversed(sessions), key=lambda s: not s.live)
        sent: list[_GatewaySession] = []
        for session in sessions:
            data = data_for(session)
            if data is None:
                continue
            await self._send_dispatch(session, event, data)
            sent.append(session)
            if first_only:
                break
        return sent

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        connection = _GatewayConnection(ws, request.query.get("compress"))
        self.gateway_connects.append(dict(request.query))
        self._connections.add(connection)
        try:
            if request.query.get("encoding", "json") != "json":
                await connection.close(4002, b"Error while decoding payload.")
                return ws
            hello = {
                "heartbeat_interval": self.heartbeat_interval_ms,
                "_trace": ["fake-discord-gateway"],
            }
            await connection.send({"op": 10, "d": hello, "s": None, "t": None})
            async for frame in ws:
                if frame.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    payload = json.loads(frame.data)
                except ValueError:
                    await connection.close(4002, b"Error while decoding payload.")
                    break
                self.gateway_received.append(payload)
                await self._on_gateway_payload(connection, payload)
        finally:
            self._connections.discard(connection)
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
                if ws.close_code in (1000, 1001) and not connection.closed_by_server:
                    session.resumable = False  # a clean close from the client ends the session
            self._notify()
        return ws

    async def _on_gateway_payload(self, connection: _GatewayConnection, payload: JSON) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == 1:
            self.heartbeats += 1
            await connection.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(connection, data or {})
        elif op == 6:
            await self._resume(connection, data or {})
        elif connection.session is None:
            await connection.close(4003, b"Not authenticated.")
        elif op == 8:
            await self._request_members(connection.session, data or {})
        elif op in (3, 4):
            pass  # presence / voice state: accepted, recorded in gateway_received
        else:
            await connection.close(4001, b"Unknown opcode.")

    async def _identify(self, connection: _GatewayConnection, data: JSON) -> None:
        if connection.session is not None:
            await connection.close(4005, b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await connection.close(4004, b"Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int):
            await connection.close(4013, b"Invalid intent(s).")
            return
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await connection.close(4014, b"Disallowed intent(s).")
            return
        shard = data.get("shard")
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await connection.close(4010, b"Invalid shard.")
            return
        self.identify_payloads.append(data)
        session = _GatewaySession(secrets.token_hex(16), intents, tuple(shard) if shard else None)
        session.connection = connection
        connection.session = session
        self._sessions[session.session_id] = session
        guild_ids = [g for g in self.guilds if session.owns_guild(g)]
        ready: JSON = {
            "v": API_VERSION,
            "user": copy.deepcopy(self.bot_user),
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": str(self.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fake-discord-gateway"],
        }
        if shard is not None:
            ready["shard"] = list(shard)
        await self._send_dispatch(session, "READY", ready)
        for guild_id in guild_ids:
            await self._send_dispatch(
                session, "GUILD_CREATE", self._guild_create_payload(guild_id, session)
            )
        self._notify()

    async def _resume(self, connection: _GatewayConnection, data: JSON) -> None:
        if data.get("token") != self.token:
            await connection.close(4004, b"Authentication failed.")
            return
        session = self._sessions.get(data.get("session_id") or "")
        if session is None or not session.resumable:
            await connection.send({"op": 9, "d": False, "s": None, "t": None})
            return
        old = session.connection
        session.connection = connection
        connection.session = session
        if old is not None and old is not connection:
            old.session = None
            await old.close(4000, b"Session resumed elsewhere.")
        last_seen = int(data.get("seq") or 0)
        for payload in list(session.backlog):
            if payload["s"] > last_seen:
                await connection.send(payload)
        self.resumes += 1
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord-gateway"]})
        self._notify()

    async def _request_members(self, session: _GatewaySession, data: JSON) -> None:
        guild_ids = data.get("guild_id")
        for raw_id in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild_id = int(raw_id)
            members = list(self.guild_members.get(guild_id, {}).values())
            query = (data.get("query") or "").lower()
            if data.get("user_ids"):
                wanted = {str(u) for u in data["user_ids"]}
                members = [m for m in members if m["user"]["id"] in wanted]
            elif query:
                members = [m for m in members if m["user"]["username"].lower().startswith(query)]
            if data.get("limit"):
                members = members[: int(data["limit"])]
            chunk = {
                "guild_id": str(guild_id),
                "members": copy.deepcopy(members),
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [],
                "presences": [],
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    def _guild_create_payload(self, guild_id: int, session: _GatewaySession) -> JSON:
        guild = copy.deepcopy(self.guilds[guild_id])
        members = self.guild_members.get(guild_id, {})
        visible = (
            members.values() if session.intents & INTENT_GUILD_MEMBERS else [members[self.bot_id]]
        )
        guild.update(
            unavailable=False,
            large=False,
            member_count=len(members),
            channels=[
                copy.deepcopy(c)
                for c in self.channels.values()
                if c.get("guild_id") == str(guild_id)
            ],
            members=copy.deepcopy(list(visible)),
            threads=[],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return guild


def _id_of_interaction(interaction: Any) -> int:
    if isinstance(interaction, FakeInteraction):
        return interaction.id
    return _id_of(interaction)
