"""The events services exchange: versioned pydantic models shared by producers and consumers.

Outbox events travel as Debezium change events of an `outboxes` row; `media_uploaded` is
published straight to Kafka by the upload service inside the same envelope fields.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

MEDIA_TOPIC = "bmt.media-uploaded"
# The services' databases: each has its outbox, captured by Debezium into its own topic.
DATABASES = ("bmt_user", "bmt_mail", "bmt_product", "bmt_showtime", "bmt_order", "bmt_payment")


def outbox_topic(database: str) -> str:
    return f"{database}.public.outboxes"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    AGGREGATE: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError


class OtpRequested(Event):
    TYPE = "otp_requested"
    AGGREGATE = "email"
    email: str
    otp: str
    purpose: Literal["registration", "password_reset"]
    expires_at: dt.datetime

    def aggregate_id(self) -> str:
        return self.email


class UserRegistered(Event):
    TYPE = "user_registered"
    AGGREGATE = "user"
    user_id: int
    email: str
    name: str

    def aggregate_id(self) -> str:
        return str(self.user_id)


class SessionRevoked(Event):
    TYPE = "session_revoked"
    AGGREGATE = "user"
    user_id: int
    session_id: str
    expires_at: dt.datetime

    def aggregate_id(self) -> str:
        return str(self.user_id)


class MediaUploaded(Event):
    TYPE = "media_uploaded"
    AGGREGATE = "media"
    owner: Literal["film", "fab"]
    owner_id: int
    slot: Literal["poster", "trailer", "image"]
    bucket: str
    key: str
    url: str
    size: int

    def aggregate_id(self) -> str:
        return f"{self.owner}:{self.owner_id}"


class ReleasedSeat(BaseModel):
    model_config = ConfigDict(frozen=True)
    seat_id: int
    label: str
    seat_type: Literal["standard", "vip", "couple"]
    price: int
    pair_seat_id: int | None = None


class ShowtimeReleased(Event):
    """A showtime became bookable: its seats, with prices, go to the order service's inventory."""

    TYPE = "showtime_released"
    AGGREGATE = "showtime"
    showtime_id: int
    film_id: int
    cinema_id: int
    cinema_name: str
    hall_id: int
    hall_name: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    seats: list[ReleasedSeat]

    def aggregate_id(self) -> str:
        return str(self.showtime_id)


class ShowtimeCancelled(Event):
    """A showtime was withdrawn: no more bookings for it."""

    TYPE = "showtime_cancelled"
    AGGREGATE = "showtime"
    showtime_id: int

    def aggregate_id(self) -> str:
        return str(self.showtime_id)


class OrderCreated(Event):
    TYPE = "order_created"
    AGGREGATE = "order"
    order_id: int
    user_id: int
    email: str
    showtime_id: int
    total: int
    expires_at: dt.datetime

    def aggregate_id(self) -> str:
        return str(self.order_id)


class TicketIssued(BaseModel):
    model_config = ConfigDict(frozen=True)
    ticket_id: int
    seat_label: str
    code: str


class OrderConfirmed(Event):
    TYPE = "order_confirmed"
    AGGREGATE = "order"
    order_id: int
    user_id: int
    email: str
    showtime_id: int
    starts_at: dt.datetime
    cinema_name: str
    hall_name: str
    total: int
    tickets: list[TicketIssued]

    def aggregate_id(self) -> str:
        return str(self.order_id)


class OrderClosed(Event):
    """A pending order ended unpaid: its hold expired or its client cancelled it."""

    TYPE = "order_closed"
    AGGREGATE = "order"
    order_id: int
    reason: Literal["expired", "cancelled"]

    def aggregate_id(self) -> str:
        return str(self.order_id)


class OrderConfirmationFailed(Event):
    """A payment arrived for an order that can no longer be confirmed: it must be refunded."""

    TYPE = "order_confirmation_failed"
    AGGREGATE = "order"
    order_id: int
    payment_id: int
    reason: str

    def aggregate_id(self) -> str:
        return str(self.order_id)


class PaymentSucceeded(Event):
    TYPE = "payment_succeeded"
    AGGREGATE = "order"
    payment_id: int
    order_id: int
    amount: int
    provider: Literal["vnpay", "momo"]
    transaction_no: str

    def aggregate_id(self) -> str:
        return str(self.order_id)


class PaymentFailed(Event):
    TYPE = "payment_failed"
    AGGREGATE = "order"
    payment_id: int
    order_id: int
    provider: Literal["vnpay", "momo"]
    reason: str

    def aggregate_id(self) -> str:
        return str(self.order_id)


class PaymentRefunded(Event):
    TYPE = "payment_refunded"
    AGGREGATE = "order"
    payment_id: int
    order_id: int
    amount: int
    reason: str

    def aggregate_id(self) -> str:
        return str(self.order_id)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        OtpRequested,
        UserRegistered,
        SessionRevoked,
        MediaUploaded,
        ShowtimeReleased,
        ShowtimeCancelled,
        OrderCreated,
        OrderConfirmed,
        OrderClosed,
        OrderConfirmationFailed,
        PaymentSucceeded,
        PaymentFailed,
        PaymentRefunded,
    )
}
