"""Errors a user (or the outside world) can cause.

Each carries a catalogue text key and the parameters its message needs, so an
adapter can say what went wrong in the user's language without knowing why.
"""

from __future__ import annotations

from typing import Any


class LokizError(Exception):
    """Base of every expected error; `key` names the catalogue text."""

    key = "error.generic"

    def __init__(self, detail: str = "", **params: Any) -> None:
        super().__init__(detail or self.key)
        self.params: dict[str, Any] = params


# --- settings / operator -------------------------------------------------
class ConfigError(LokizError):
    key = "error.config"


# --- credits --------------------------------------------------------------
class InsufficientCredits(LokizError):
    """Balance too low; params: needed, balance, shortfall."""

    key = "error.insufficient_credits"


class InvalidAmount(LokizError):
    key = "error.invalid_amount"


class UnknownUser(LokizError):
    key = "error.unknown_user"


class KeyReused(LokizError):
    """An idempotency key already names a different change (other user, amount or kind)."""

    key = "error.key_reused"


class AlreadyStarted(LokizError):
    """This press (same message, same screen) already started a job; params: id."""

    key = "error.already_started"


# --- media ---------------------------------------------------------------
class MediaError(LokizError):
    key = "error.media"


class TimestampInvalid(MediaError):
    """The text is not a time; params: text."""

    key = "error.timestamp_invalid"


class TimestampOutOfRange(MediaError):
    """The time is negative or past the end; params: seconds, duration."""

    key = "error.timestamp_out_of_range"


class NotAVideo(MediaError):
    key = "error.not_a_video"


class AudioOnly(MediaError):
    key = "error.audio_only"


class CorruptVideo(MediaError):
    key = "error.corrupt_video"


class EmptyFile(MediaError):
    key = "error.empty_file"


class VideoTooLong(MediaError):
    """params: duration, limit (seconds)."""

    key = "error.video_too_long"


class VideoTooLarge(MediaError):
    """params: size_mb, limit_mb."""

    key = "error.video_too_large"


class MediaQuotaExceeded(MediaError):
    """The user's stored media would pass MAX_MEDIA_MB_PER_USER; params: used_mb, size_mb,
    limit_mb, hours."""

    key = "error.media_quota"


class NotAnImage(MediaError):
    key = "error.not_an_image"


class TooManyPixels(MediaError):
    """Frame or photo over MAX_PIXELS; params: width, height, limit (megapixels)."""

    key = "error.too_many_pixels"


class UnsupportedFormat(MediaError):
    """A video in a container not on the allow-list (raw .h264, .ts, .flv…); params: format."""

    key = "error.unsupported_format"


class MediaTimeout(MediaError):
    key = "error.media_timeout"


# --- prompts / studio ----------------------------------------------------
class PromptInvalid(LokizError):
    """params: reason ('empty' | 'too_long'), limit."""

    key = "error.prompt_invalid"


class SessionExpired(LokizError):
    key = "error.session_expired"


class NotSessionOwner(LokizError):
    key = "error.not_your_session"


class TooManyActiveJobs(LokizError):
    """params: limit."""

    key = "error.too_many_jobs"


class RateLimited(LokizError):
    key = "error.slow_down"


class NotAdmin(LokizError):
    key = "error.not_admin"


class SharedStoreDown(Exception):
    """The shared store (Redis) did not answer: the work that needs it is refused, so the
    sender retries later, rather than done without the shared state."""
