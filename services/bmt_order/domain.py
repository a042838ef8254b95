"""Seats, orders and tickets: shapes and rules, free of I/O."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from bmt_common.fields import Id, Strict

SeatStatus = Literal["available", "held", "sold"]
OrderStatus = Literal["pending", "confirmed", "expired", "cancelled", "refund_required"]
_CODE = re.compile(r"^T(\d{1,18})\.([A-Za-z0-9_-]{22})$")


class FabLine(Strict):
    fab_id: Id
    quantity: int = Field(ge=1, le=20)


class BookRequest(Strict):
    showtime_id: Id
    seats: list[Id] = Field(min_length=1, max_length=10, description="Seat ids of the seat map")
    fabs: list[FabLine] = Field(default_factory=list, max_length=10)

    @field_validator("seats")
    @classmethod
    def distinct_seats(cls, seats: list[int]) -> list[int]:
        if len(set(seats)) != len(seats):
            raise ValueError("a seat appears more than once")
        return sorted(seats)

    @field_validator("fabs")
    @classmethod
    def distinct_fabs(cls, fabs: list[FabLine]) -> list[FabLine]:
        if len({f.fab_id for f in fabs}) != len(fabs):
            raise ValueError("an item appears more than once; raise its quantity instead")
        return fabs


class CheckIn(Strict):
    code: str = Field(min_length=5, max_length=64)


class Seat(BaseModel):
    seat_id: int
    label: str
    seat_type: str
    price: int
    pair_seat_id: int | None
    status: SeatStatus


class SeatMap(BaseModel):
    showtime_id: int
    starts_at: dt.datetime
    available: int
    held: int
    sold: int
    seats: list[Seat]


class OrderSeat(BaseModel):
    seat_id: int
    label: str
    seat_type: str
    price: int


class OrderFab(BaseModel):
    fab_id: int
    name: str
    unit_price: int
    quantity: int


class Order(BaseModel):
    id: int
    user_id: int
    showtime_id: int
    status: OrderStatus
    seats: list[OrderSeat]
    fabs: list[OrderFab]
    seats_total: int
    fabs_total: int
    total: int
    expires_at: dt.datetime
    created_at: dt.datetime
    confirmed_at: dt.datetime | None


class OrderList(BaseModel):
    items: list[Order]


class Ticket(BaseModel):
    id: int
    order_id: int
    showtime_id: int
    seat_label: str
    code: str
    qr_url: str
    checked_in_at: dt.datetime | None


class TicketList(BaseModel):
    items: list[Ticket]


class CheckedIn(BaseModel):
    ticket_id: int
    order_id: int
    showtime_id: int
    seat_label: str
    checked_in_at: dt.datetime


def couple_problems(
    requested: set[int], seats: list[tuple[str, int | None, str | None]]
) -> list[str]:
    """A couple seat is sold with its pair: for each requested (label, pair id, pair label),
    name the ones whose pair is missing from the request."""
    return [
        f"couple seat {label} is sold with {pair_label}"
        for label, pair, pair_label in sorted(seats, key=lambda seat: seat[0])
        if pair is not None and pair not in requested
    ]


def _signature(key: str, ticket_id: int, order_id: int, showtime_id: int, seat_id: int) -> str:
    message = f"{ticket_id}:{order_id}:{showtime_id}:{seat_id}".encode()
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]


def ticket_code(key: str, ticket_id: int, order_id: int, showtime_id: int, seat_id: int) -> str:
    """`T<id>.<signature>`: short enough for a QR code, impossible to make up without the key."""
    return f"T{ticket_id}.{_signature(key, ticket_id, order_id, showtime_id, seat_id)}"


def ticket_id_of(code: str) -> int | None:
    found = _CODE.match(code.strip())
    return int(found.group(1)) if found else None


def code_matches(
    key: str, code: str, ticket_id: int, order_id: int, showtime_id: int, seat_id: int
) -> bool:
    expected = ticket_code(key, ticket_id, order_id, showtime_id, seat_id)
    return hmac.compare_digest(code.strip(), expected)
