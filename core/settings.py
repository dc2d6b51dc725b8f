"""Settings from `.env` and the environment (SPEC §7).

`load_settings()` turns any invalid or contradictory value into one
`ConfigError` line that names the variable.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.storage.url import redact_url, url_password

Platform = Literal["telegram", "discord"]
PLATFORMS: tuple[str, ...] = ("telegram", "discord")


def parse_admin_ids(raw: str) -> frozenset[tuple[str, str]]:
    """`telegram:123,discord:456` → {("telegram", "123"), ("discord", "456")}."""
    admins: set[tuple[str, str]] = set()
    for item in filter(None, (part.strip() for part in raw.split(","))):
        platform, sep, user_id = item.partition(":")
        platform = platform.strip().lower()
        user_id = user_id.strip()
        # ASCII digits without a leading zero: "0123" or "١٢٣" would never match a real id.
        plain = user_id.isascii() and user_id.isdigit() and not user_id.startswith("0")
        if not sep or platform not in PLATFORMS or not plain:
            raise ValueError(
                f"{item!r} is not PLATFORM:ID (PLATFORM is telegram or discord,"
                " ID is the platform's number, ASCII digits without a leading zero)"
            )
        admins.add((platform, user_id))
    return frozenset(admins)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # platforms
    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_api_local: bool = False
    telegram_webhook: bool = False
    telegram_webhook_secret: SecretStr | None = None
    discord_bot_token: SecretStr | None = None
    discord_api_base: str | None = None
    discord_gateway_url: str | None = None
    # Discord sharded over processes: this process runs these shards ("0" or "0,1") of
    # DISCORD_SHARD_COUNT; both unset: one process, one shard, as before.
    discord_shard_ids: str | None = None
    discord_shard_count: int | None = Field(default=None, ge=1, le=4096)
    # the setWebhook of webhook mode (Telegram allows at most 100 connections)
    telegram_webhook_max_connections: int = Field(default=40, ge=1, le=100)
    # with REDIS_URL: how long an instance holds an update it is handling (renewed while it
    # runs); a killed instance's update is taken by another after this long
    telegram_update_lease_seconds: float = Field(default=30.0, ge=1, le=600)
    # long polling with REDIS_URL: how long an update is retried in-process while Redis is
    # unreachable (aiogram has confirmed it to Telegram already) before the user is told
    telegram_redis_retry_seconds: float = Field(default=30.0, ge=0, le=600)

    # generation
    replicate_api_token: SecretStr | None = None
    replicate_base_url: str = "https://api.replicate.com/v1"
    replicate_webhook_secret: SecretStr | None = None
    generator: Literal["replicate", "local"] | None = None
    model_template: str = "google/veo-3-fast"
    model_glitch_animate: str = "wan-video/wan-2.2-animate-animation"
    model_glitch_replace: str = "wan-video/wan-2.2-animate-replace"
    music_model: Literal["bark", "musicgen"] = "bark"
    model_music_bark: str = (
        "suno-ai/bark:b76242b40d67c76ab6742e987628a2a9ac019e11d56ab96c4e91ce03b79b2787"
    )
    model_music_musicgen: str = (
        "meta/musicgen:671ac645ce5e552cc63a54a2bbff63fcf798043055d2dac5fc9e36a837eedcfb"
    )
    templates_file: Path | None = None

    # storage and media
    database_url: str = "sqlite:///data/lokiz.db"
    # shared by several instances: update isolation and dedupe, rate and send budgets, …
    redis_url: str | None = None
    redis_key_prefix: str = "lokiz:"
    media_dir: Path = Path("data/media")
    # s3://bucket/prefix: media shared by every instance; MEDIA_DIR becomes a local cache
    media_url: str | None = None
    s3_endpoint_url: str | None = None  # empty = AWS; else MinIO, R2, Garage…
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # the bucket is reachable from the internet: Replicate gets presigned URLs, not uploads
    media_public: bool = False
    media_ttl_hours: int = Field(default=48, ge=1)
    post_ttl_days: int = Field(default=30, ge=1)  # a post keeps its clip this long
    ffmpeg_binary: Path | None = None
    max_video_seconds: float = Field(default=600.0, gt=0)
    max_pixels: int = Field(default=16_777_216, ge=4096)  # 4096×4096; checked before decoding
    glitch_max_seconds: float = Field(default=10.0, gt=0, le=60)
    max_media_mb_per_user: int = Field(default=500, ge=1)
    max_download_mb: int = Field(default=200, ge=1)

    # http
    public_url: str | None = None
    http_host: str = "127.0.0.1"
    # Bearer token /metrics asks for when set (for operators who expose the port).
    metrics_token: SecretStr | None = None
    http_port: int = Field(default=8080, ge=0, le=65535)

    # people and money
    admin_ids: str = ""
    starter_credits: int = Field(default=50, ge=0)
    price_template: int = Field(default=20, ge=0)
    price_template_1080p: int = Field(default=10, ge=0)  # extra credits for a 1080p template
    price_glitch_animate: int = Field(default=30, ge=0)
    price_glitch_replace: int = Field(default=30, ge=0)
    price_music: int = Field(default=5, ge=0)

    # engine
    max_concurrent_jobs: int = Field(default=8, ge=1)
    max_active_jobs_per_user: int = Field(default=2, ge=1)
    job_timeout_seconds: float = Field(default=900.0, gt=0)

    # several instances (PostgreSQL mode; see README "Run several instances")
    worker_concurrency: int = Field(default=300, ge=1, le=10_000)  # job tasks one worker holds
    instance_id: str | None = None  # names this instance's job claims; default hostname-pid
    drain_seconds: float = Field(default=30.0, ge=0, le=3600)  # SIGTERM: finish or hand back

    # the web studio (SPEC §11)
    web_studio: bool | None = None  # None: on when no platform token is set
    web_secret: SecretStr | None = None
    web_access_code: SecretStr | None = None
    web_max_upload_mb: int = Field(default=100, ge=1)
    web_starter_credits: int = Field(default=0, ge=0)

    default_language: Literal["en", "ko"] = "en"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", "generator", "music_model", "default_language", mode="before")
    @classmethod
    def _lower_or_upper(cls, value: object, info: object) -> object:
        if isinstance(value, str):
            name = getattr(info, "field_name", "")
            return value.upper() if name == "log_level" else value.lower()
        return value

    @field_validator("web_studio", "web_secret", "web_access_code", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url", "discord_shard_ids", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("discord_shard_count", mode="before")
    @classmethod
    def _empty_count_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value.strip())
            if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
                raise ValueError("must look like redis://host:6379/0 (or rediss://, unix://)")
            return value.strip()
        return value

    @field_validator("redis_key_prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_:.-]{1,64}", value):
            raise ValueError("must be 1-64 letters, digits or _ : . - (like lokiz:)")
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _valid_shard_ids(cls, value: str | None) -> str | None:
        if value is not None:
            parts = [p.strip() for p in value.split(",")]
            if not all(p.isascii() and p.isdigit() for p in parts):
                raise ValueError("must be shard numbers separated by commas, like 0 or 0,1")
        return value

    @field_validator("admin_ids")
    @classmethod
    def _valid_admin_ids(cls, value: str) -> str:
        parse_admin_ids(value)
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _telegram_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value()
            head, sep, tail = raw.partition(":")
            if not raw:
                return None
            if not (sep and head.isdigit() and tail):
                raise ValueError("must look like 123456:ABC-DEF (as given by @BotFather)")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("media_url", "s3_endpoint_url", "s3_access_key_id", mode="before")
    @classmethod
    def _empty_s3_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("s3_secret_access_key")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("media_url")
    @classmethod
    def _valid_media_url(cls, value: str | None) -> str | None:
        if value is not None:
            from core.media_s3 import parse_media_url

            parse_media_url(value)
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _valid_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL (empty = AWS S3)")
            if parts.username or parts.password:
                raise ValueError("must not hold credentials: use S3_ACCESS_KEY_ID and"
                                 " S3_SECRET_ACCESS_KEY")
        return value

    @field_validator("s3_region")
    @classmethod
    def _valid_region(cls, value: str) -> str:
        value = value.strip() or "us-east-1"
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", value):
            raise ValueError("must look like us-east-1 (lowercase letters, digits, dashes)")
        return value

    @field_validator("instance_id")
    @classmethod
    def _valid_instance_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", value):
            raise ValueError("must be 1-64 letters, digits, dots, dashes, colons or underscores")
        return value

    @field_validator("ffmpeg_binary")
    @classmethod
    def _absolute_ffmpeg(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path to an ffmpeg binary")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.generator == "replicate" and self.replicate_api_token is None:
            raise ValueError("GENERATOR: 'replicate' needs REPLICATE_API_TOKEN")
        if self.telegram_webhook and not self.public_url:
            raise ValueError("TELEGRAM_WEBHOOK: webhook mode needs PUBLIC_URL")
        if self.media_url:
            if self.s3_access_key_id is None:
                raise ValueError("S3_ACCESS_KEY_ID: MEDIA_URL=s3://… needs S3_ACCESS_KEY_ID")
            if self.s3_secret_access_key is None:
                raise ValueError(
                    "S3_SECRET_ACCESS_KEY: MEDIA_URL=s3://… needs S3_SECRET_ACCESS_KEY")
        elif self.media_public:
            raise ValueError("MEDIA_PUBLIC: needs MEDIA_URL=s3://… (a local folder is private)")
        if (self.discord_shard_ids is None) != (self.discord_shard_count is None):
            raise ValueError("DISCORD_SHARD_IDS: set it together with DISCORD_SHARD_COUNT")
        if self.discord_shard_count is not None and any(
            shard >= self.discord_shard_count for shard in self.shard_ids
        ):
            raise ValueError("DISCORD_SHARD_IDS: each shard must be below DISCORD_SHARD_COUNT")
        if self.max_active_jobs_per_user > self.max_concurrent_jobs:
            raise ValueError(
                "MAX_ACTIVE_JOBS_PER_USER: cannot exceed MAX_CONCURRENT_JOBS"
            )
        return self

    # derived values
    @property
    def admins(self) -> frozenset[tuple[str, str]]:
        return parse_admin_ids(self.admin_ids)

    @property
    def backend(self) -> Literal["replicate", "local"]:
        if self.generator:
            return self.generator
        return "replicate" if self.replicate_api_token else "local"

    @property
    def shard_ids(self) -> list[int]:
        """DISCORD_SHARD_IDS as numbers (sorted, without repeats); [] when unset."""
        if self.discord_shard_ids is None:
            return []
        return sorted({int(p) for p in self.discord_shard_ids.split(",")})

    @property
    def has_platform_token(self) -> bool:
        return self.telegram_bot_token is not None or self.discord_bot_token is not None

    @property
    def web_starter(self) -> int:
        """A new web user's starter credits: clearing cookies makes a new user, so where
        credits cost real money (Replicate) they get WEB_STARTER_CREDITS."""
        return self.web_starter_credits if self.backend == "replicate" else self.starter_credits

    @property
    def web_enabled(self) -> bool:
        """The web studio serves: when asked to, or by default when no platform token is set."""
        return self.web_studio if self.web_studio is not None else not self.has_platform_token

    @property
    def postgres(self) -> bool:
        """Several instances may share this database (jobs then run on its queue)."""
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def instance_name(self) -> str:
        """INSTANCE_ID, else hostname-pid with PostgreSQL; the embedded store has one
        instance, named "main" (a restart takes its own job claims back at once)."""
        if self.instance_id:
            return self.instance_id
        return f"{socket.gethostname()}-{os.getpid()}" if self.postgres else "main"

    @property
    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None

    def secrets(self) -> list[str]:
        """Every secret value, for log redaction."""
        values = [
            self.telegram_bot_token,
            self.discord_bot_token,
            self.replicate_api_token,
            self.replicate_webhook_secret,
            self.metrics_token,
            self.telegram_webhook_secret,
            self.s3_secret_access_key,
            self.web_secret,
            self.web_access_code,
        ]
        found = [v.get_secret_value() for v in values if v and v.get_secret_value()]
        for url in (self.database_url, self.redis_url):
            password = url_password(url) if url else None
            if password:
                found.append(password)
        return found


def load_settings(env_file: str | os.PathLike[str] | None = ".env", **overrides: Any) -> Settings:
    """Read settings; raise `ConfigError` with one line naming the bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error.get("loc") or ()
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if loc:
            variable = str(loc[0]).upper()
            given = error.get("input")
            if variable in ("DATABASE_URL", "MEDIA_URL", "S3_ENDPOINT_URL", "REDIS_URL") and isinstance(
                given, str
            ):
                given = redact_url(given)
            secret = variable.endswith(("TOKEN", "SECRET", "CODE")) or "SECRET" in variable
            shown = "" if secret else f" (got {given!r})"
            raise ConfigError(f"{variable}: {message}{shown}") from None
        raise ConfigError(message) from None
