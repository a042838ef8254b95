"""Cinemas, halls, seat layouts and showtimes: shapes and rules, free of I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator

from bmt_common.fields import Id, Strict

SeatType = Literal["standard", "vip", "couple"]
Label = Annotated[str, Field(pattern=r"^[A-Z]{1,2}$")]


class RowSpec(Strict):
    label: Label
    seats: int = Field(ge=1, le=60)
    seat_type: SeatType = "standard"
    price: int = Field(ge=0, le=100_000_000, description="In the smallest currency unit")

    @model_validator(mode="after")
    def couples_come_in_pairs(self) -> RowSpec:
        if self.seat_type == "couple" and self.seats % 2:
            raise ValueError(f"row {self.label}: couple seats come in pairs, {self.seats} is odd")
        return self


def _unique_rows(rows: list[RowSpec]) -> list[RowSpec]:
    labels = [r.label for r in rows]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"rows {duplicates} appear more than once")
    return rows


class HallSpec(Strict):
    name: str = Field(min_length=1, max_length=50)
    rows: Annotated[list[RowSpec], AfterValidator(_unique_rows)] = Field(
        min_length=1, max_length=40
    )
    blocked: list[str] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def blocked_seats_exist(self) -> HallSpec:
        known = {seat.label for seat in layout(self)}
        unknown = sorted(set(self.blocked) - known)
        if unknown:
            raise ValueError(f"hall {self.name}: blocked seats {unknown} are not in its rows")
        return self


def _unique_halls(halls: list[HallSpec]) -> list[HallSpec]:
    names = [h.name for h in halls]
    if len(set(names)) != len(names):
        raise ValueError("hall names must be unique within a cinema")
    return halls


class CinemaSpec(Strict):
    name: str = Field(min_length=1, max_length=100)
    city: str = Field(min_length=1, max_length=100)
    address: str = Field(min_length=1, max_length=300)
    halls: Annotated[list[HallSpec], AfterValidator(_unique_halls)] = Field(
        min_length=1, max_length=30
    )


@dataclass(frozen=True)
class SeatPlan:
    row_label: str
    number: int
    label: str
    seat_type: SeatType
    price: int
    blocked: bool
    pair_label: str | None


def layout(hall: HallSpec) -> list[SeatPlan]:
    """Every seat of a hall; couple seats pair 1-2, 3-4, ... within their row."""
    blocked = set(hall.blocked)
    seats = []
    for row in hall.rows:
        for number in range(1, row.seats + 1):
            label = f"{row.label}{number}"
            pair = None
            if row.seat_type == "couple":
                pair = f"{row.label}{number + 1 if number % 2 else number - 1}"
            seats.append(
                SeatPlan(row.label, number, label, row.seat_type, row.price, label in blocked, pair)
            )
    return seats


class HallOut(BaseModel):
    id: int
    name: str
    seats: int
    blocked: int


class Cinema(BaseModel):
    id: int
    external_key: str | None
    name: str
    city: str
    address: str
    halls: list[HallOut]


class CinemaList(BaseModel):
    items: list[Cinema]


# Showtimes start in this window (UTC): a film's end and its sales windows are computed from the
# start, and 9999-12-31T23:30Z overflowed (a 500, and an operator retrying for ever).
EARLIEST_START = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_START = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _bounded_start(starts_at: dt.datetime) -> dt.datetime:
    if starts_at.tzinfo is None:
        raise ValueError("it needs a time zone, e.g. 2026-12-01T19:30:00+07:00")
    if not EARLIEST_START <= starts_at < LATEST_START:
        raise ValueError(
            f"it must be from {EARLIEST_START:%Y-%m-%d} to before {LATEST_START:%Y-%m-%d} (UTC)"
        )
    return starts_at


StartsAt = Annotated[dt.datetime, AfterValidator(_bounded_start)]


class ShowtimeSpec(Strict):
    film_id: Id
    hall_id: Id
    starts_at: StartsAt


class ShowtimeByKey(Strict):
    film_id: Id
    cinema_key: str = Field(min_length=1, max_length=200)
    hall: str = Field(min_length=1, max_length=50)
    starts_at: StartsAt
    released: bool = False


class Showtime(BaseModel):
    id: int
    external_key: str | None
    film_id: int
    cinema_id: int
    cinema_name: str
    hall_id: int
    hall_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    released: bool


class ShowtimeList(BaseModel):
    items: list[Showtime]


class ShowtimeQuery(Strict):
    film_id: Id | None = None
    cinema_id: Id | None = None
    date: dt.date | None = Field(default=None, description="Showtimes starting that day (UTC)")
    include_unreleased: bool = False


class NowShowing(BaseModel):
    film_id: int
    showtimes: int
    first_starts_at: dt.datetime


class NowShowingList(BaseModel):
    items: list[NowShowing]


class NowShowingQuery(Strict):
    days: int = Field(default=7, ge=1, le=60)


def ends_at(starts_at: dt.datetime, duration_minutes: int, cleaning_minutes: int) -> dt.datetime:
    """A showtime holds its hall for the film plus the cleaning after it."""
    return starts_at + dt.timedelta(minutes=duration_minutes + cleaning_minutes)
