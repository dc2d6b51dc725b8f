"""Times as users type them, and as the bot shows them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import TimestampInvalid, TimestampOutOfRange
from core.media.timestamps import check_in_range, format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5.5", 5.5),
        ("0:05.5", 5.5),
        ("1:02:03.25", 3723.25),
        ("1m2.5s", 62.5),
        ("83s", 83.0),
        ("1h2m3s", 3723.0),
        ("1분 2.5초", 62.5),
        ("1시간 2분 3초", 3723.0),
        ("2초", 2.0),
        ("  5.5 \n", 5.5),
        ("5,5", 5.5),
        ("0:05,5", 5.5),
        ("１：０５", 65.0),  # full-width, as some phone keyboards type it
        ("1 m 2 s", 62.0),
        ("83:20", 5000.0),
        ("0", 0.0),
        (".5", 0.5),
        ("1.23456", 1.235),  # beyond milliseconds is rounded
    ],
)
def test_every_documented_way_of_writing_a_time_is_understood(text: str, seconds: float) -> None:
    assert parse_timestamp(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "-5", "-0:05", "nan", "inf", "1e3", "5.5.5", "1:60", "1:61:00", "1:2:3:4",
     "25h", "24:00:01", "0." + "1" * 50, "9" * 50, "5s3m", "m", "1,000,000", "five", "0x10",
     "½", "1:-5"],
)
def test_garbage_negative_and_absurd_times_are_refused(text: str) -> None:
    with pytest.raises(TimestampInvalid) as caught:
        parse_timestamp(text)
    assert caught.value.key == "error.timestamp_invalid"
    assert len(caught.value.params["text"]) <= 40


def test_formatting_reads_like_a_player() -> None:
    assert format_timestamp(2.5) == "0:02.5"
    assert format_timestamp(0) == "0:00"
    assert format_timestamp(62.25) == "1:02.25"
    assert format_timestamp(3723.25) == "1:02:03.25"
    assert format_timestamp(59.9996) == "1:00"


def test_a_time_past_the_end_names_the_video_length() -> None:
    assert check_in_range(3.0, 12.5) == 3.0
    assert check_in_range(12.5, 12.5) == 12.5
    with pytest.raises(TimestampOutOfRange) as caught:
        check_in_range(75.0, 12.5)
    assert caught.value.params == {"seconds": "1:15", "duration": "0:12.5"}
    with pytest.raises(TimestampOutOfRange):
        check_in_range(-0.1, 12.5)
    with pytest.raises(TimestampOutOfRange):
        check_in_range(math.nan, 12.5)


@given(st.integers(min_value=0, max_value=24 * 3600 * 1000))
def test_formatted_times_parse_back_to_the_same_millisecond(millis: int) -> None:
    seconds = millis / 1000
    assert parse_timestamp(format_timestamp(seconds)) == seconds


@given(
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59_999),
)
def test_unit_and_colon_forms_agree(hours: int, minutes: int, millis: int) -> None:
    secs = millis / 1000
    colon = parse_timestamp(f"{hours}:{minutes:02d}:{secs:06.3f}")
    units = parse_timestamp(f"{hours}h{minutes}m{secs:.3f}s")
    korean = parse_timestamp(f"{hours}시간 {minutes}분 {secs:.3f}초")
    assert colon == units == korean == pytest.approx(hours * 3600 + minutes * 60 + secs)


@given(st.text(max_size=60))
def test_any_text_is_a_time_or_a_clear_refusal(text: str) -> None:
    try:
        seconds = parse_timestamp(text)
    except TimestampInvalid:
        return
    assert math.isfinite(seconds) and 0 <= seconds <= 24 * 3600
