"""Dates at the edges: every start the showtime API accepts has an end it can compute; a start
outside the window is refused with the field named, never a 500."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bmt_common.problems import from_validation
from bmt_showtime import domain

starts = st.datetimes(
    min_value=domain.EARLIEST_START.replace(tzinfo=None),
    max_value=domain.LATEST_START.replace(tzinfo=None) - dt.timedelta(microseconds=1),
    timezones=st.just(dt.UTC),
)


@given(starts, st.integers(min_value=1, max_value=600), st.integers(min_value=0, max_value=24 * 60))
def test_every_accepted_start_has_an_end(
    starts_at: dt.datetime, duration: int, cleaning: int
) -> None:
    spec = domain.ShowtimeSpec(film_id=1, hall_id=1, starts_at=starts_at)
    assert domain.ends_at(spec.starts_at, duration, cleaning) > spec.starts_at


@pytest.mark.parametrize(
    "starts_at",
    [
        "9999-12-31T23:30:00Z",
        "2100-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
    ],
)
def test_a_start_outside_the_window_is_refused_naming_the_field(starts_at: str) -> None:
    with pytest.raises(ValidationError) as caught:
        domain.ShowtimeByKey.model_validate(
            {"film_id": 1, "cinema_key": "c", "hall": "Hall 1", "starts_at": starts_at}
        )
    assert from_validation(caught.value).detail == (
        "The body is invalid: starts_at: it must be from 2000-01-01 to before 2100-01-01 (UTC)"
    )


def test_a_start_without_a_time_zone_is_refused_by_key_too() -> None:
    with pytest.raises(ValidationError, match="needs a time zone"):
        domain.ShowtimeByKey.model_validate(
            {"film_id": 1, "cinema_key": "c", "hall": "H", "starts_at": "2027-01-01T19:30:00"}
        )
