"""The one timestamp format of the API and events (chalicelib.model.iso_utc)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from chalicelib.model import iso_utc


def test_utc_times_are_formatted_to_the_second_with_a_z() -> None:
    assert iso_utc(datetime(2026, 11, 23, 15, 4, 5, 678, tzinfo=UTC)) == "2026-11-23T15:04:05Z"


def test_other_offsets_are_converted_to_utc_even_when_an_equal_utc_time_was_formatted() -> None:
    utc = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    plus_two = datetime(2026, 11, 23, 15, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc == plus_two

    assert iso_utc(utc) == iso_utc(plus_two) == "2026-11-23T13:00:00Z"


def test_the_repeated_hour_of_a_clock_change_gives_two_instants() -> None:
    try:
        new_york = ZoneInfo("America/New_York")
    except ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    first = datetime(2026, 11, 1, 1, 30, tzinfo=new_york)  # EDT, UTC-4
    second = first.replace(fold=1)  # the same wall time an hour later, EST, UTC-5
    assert first == second  # equal and hash-equal, yet different instants

    assert (iso_utc(first), iso_utc(second)) == ("2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z")
