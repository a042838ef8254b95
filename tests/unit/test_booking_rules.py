"""Seat layouts, couple seats, showtime times and ticket codes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import ValidationError

from bmt_order import domain as order
from bmt_showtime import domain as showtime


def hall(**overrides: object) -> dict[str, object]:
    return {
        "name": "H1",
        "rows": [
            {"label": "A", "seats": 3, "price": 90_000},
            {"label": "B", "seats": 4, "seat_type": "couple", "price": 200_000},
        ],
        **overrides,
    }


def test_a_layout_names_every_seat_and_pairs_couples() -> None:
    seats = showtime.layout(showtime.HallSpec.model_validate(hall(blocked=["A2"])))
    assert [s.label for s in seats] == ["A1", "A2", "A3", "B1", "B2", "B3", "B4"]
    assert [s.label for s in seats if s.blocked] == ["A2"]
    assert {s.label: s.pair_label for s in seats if s.seat_type == "couple"} == {
        "B1": "B2",
        "B2": "B1",
        "B3": "B4",
        "B4": "B3",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"rows": [{"label": "B", "seats": 3, "seat_type": "couple", "price": 1}]},
            "come in pairs",
        ),
        ({"blocked": ["Z9"]}, "blocked seats ['Z9'] are not in its rows"),
        (
            {
                "rows": [
                    {"label": "A", "seats": 2, "price": 1},
                    {"label": "A", "seats": 2, "price": 1},
                ]
            },
            "appear more than once",
        ),
        ({"rows": [{"label": "A", "seats": 0, "price": 1}]}, "greater than or equal to 1"),
        ({"rows": [{"label": "A", "seats": 2, "price": -5}]}, "greater than or equal to 0"),
    ],
)
def test_inconsistent_layouts_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        showtime.HallSpec.model_validate(hall(**overrides))


def test_a_showtime_holds_the_hall_for_film_and_cleaning() -> None:
    starts = dt.datetime(2026, 12, 1, 19, 30, tzinfo=dt.UTC)
    assert showtime.ends_at(starts, 128, 15) == dt.datetime(2026, 12, 1, 21, 53, tzinfo=dt.UTC)


def test_a_showtime_start_needs_a_time_zone() -> None:
    with pytest.raises(ValidationError, match="needs a time zone"):
        showtime.ShowtimeSpec(film_id=1, hall_id=1, starts_at=dt.datetime(2026, 12, 1, 19, 30))


def test_a_couple_seat_needs_its_pair() -> None:
    seats: list[tuple[str, int | None, str | None]] = [
        ("C1", 2, "C2"),
        ("C2", 1, "C1"),
        ("A1", None, None),
    ]
    assert order.couple_problems({1, 2, 3}, seats) == []
    assert order.couple_problems({1, 3}, [seats[0], seats[2]]) == ["couple seat C1 is sold with C2"]


def test_an_order_names_each_seat_once() -> None:
    with pytest.raises(ValidationError, match="appears more than once"):
        order.BookRequest(showtime_id=1, seats=[5, 5])
    with pytest.raises(ValidationError, match="at most 10 items"):
        order.BookRequest(showtime_id=1, seats=list(range(1, 12)))


def test_ticket_codes_are_signed() -> None:
    code = order.ticket_code("k" * 32, 7, 3, 2, 41)
    assert order.ticket_id_of(code) == 7
    assert order.code_matches("k" * 32, code, 7, 3, 2, 41)
    assert not order.code_matches("k" * 32, code, 7, 3, 2, 42)  # another seat
    assert not order.code_matches("x" * 32, code, 7, 3, 2, 41)  # another key
    forged = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert not order.code_matches("k" * 32, forged, 7, 3, 2, 41)
    assert order.ticket_id_of("T7.short") is None
