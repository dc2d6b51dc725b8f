"""Times inside a video, as people type them and as the bot shows them."""

from __future__ import annotations

import math
import re
import unicodedata

from core.errors import TimestampInvalid, TimestampOutOfRange

MAX_SECONDS = 24 * 3600.0
_MAX_DECIMALS = 6  # more is absurd precision, not a time someone means
_MAX_LENGTH = 40

_NUM = r"(\d+(?:\.\d+)?|\.\d+)"
_PLAIN = re.compile(rf"{_NUM}", re.ASCII)
_COLON = re.compile(r"(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", re.ASCII)
_UNITS = re.compile(
    rf"(?:{_NUM}(?:h|hr|hrs|hour|hours|시간))?"
    rf"(?:{_NUM}(?:m|min|mins|minute|minutes|분))?"
    rf"(?:{_NUM}(?:s|sec|secs|second|seconds|초))?",
    re.ASCII,
)
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")


def _invalid(text: str) -> TimestampInvalid:
    shown = text if len(text) <= _MAX_LENGTH else text[: _MAX_LENGTH - 1] + "…"
    return TimestampInvalid(f"{shown!r} is not a time in the video", text=shown)


def _number(part: str, text: str) -> float:
    _, _, decimals = part.partition(".")
    if len(decimals) > _MAX_DECIMALS or len(part) > 20:
        raise _invalid(text)
    return float(part)


def parse_timestamp(text: str) -> float:
    """Seconds from `5.5`, `0:05.5`, `1:02:03.25`, `1m2.5s`, `83s`, `1h2m3s`, `1분 2.5초`…

    The result is rounded to the millisecond. Raises `TimestampInvalid` for
    anything else, negative or absurdly precise times, and times over 24 hours.
    """
    if not isinstance(text, str) or len(text) > 64:
        raise _invalid(str(text)[:64])
    # NFKC turns full-width digits and colons into ASCII; spaces carry no meaning here
    normal = unicodedata.normalize("NFKC", text).strip().lower()
    normal = _DECIMAL_COMMA.sub(".", normal)
    normal = re.sub(r"\s+", "", normal)
    if not normal:
        raise _invalid(text)

    seconds: float
    if match := _PLAIN.fullmatch(normal):
        seconds = _number(match.group(1), text)
    elif match := _COLON.fullmatch(normal):
        hours_part, minutes_part, seconds_part = match.groups()
        secs = _number(seconds_part, text)
        minutes = int(minutes_part)
        if secs >= 60 or (hours_part is not None and minutes >= 60):
            raise _invalid(text)
        seconds = (int(hours_part or 0) * 60 + minutes) * 60 + secs
    elif (match := _UNITS.fullmatch(normal)) and any(match.groups()):
        h, m, s = (_number(g, text) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    else:
        raise _invalid(text)

    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_SECONDS:
        raise _invalid(text)
    return round(seconds, 3)


def format_timestamp(seconds: float) -> str:
    """`2.5` → `0:02.5`, `3723.25` → `1:02:03.25` (milliseconds at most; parses back)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a time: {seconds!r}")
    millis = round(seconds * 1000)
    whole, ms = divmod(millis, 1000)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = f".{ms:03d}".rstrip("0") if ms else ""
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}{fraction}"
    return f"{minutes}:{secs:02d}{fraction}"


def check_in_range(seconds: float, duration: float) -> float:
    """Return `seconds` if it lies within a video of `duration` seconds.

    Raises `TimestampOutOfRange` (params: seconds, duration, as shown to users).
    """
    if not math.isfinite(seconds) or seconds < 0 or seconds > duration + 0.0005:
        shown = format_timestamp(seconds) if math.isfinite(seconds) and seconds >= 0 else "-"
        raise TimestampOutOfRange(
            f"{shown} is outside the video (0:00 – {format_timestamp(duration)})",
            seconds=shown,
            duration=format_timestamp(duration),
        )
    return seconds
