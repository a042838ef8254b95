"""The rules and shapes of payments, free of I/O."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bmt_common.fields import Id, Strict

Provider = Literal["vnpay", "momo"]
PaymentStatus = Literal["created", "succeeded", "failed", "refund_pending", "refunded"]
OrderStatus = Literal["pending", "confirmed", "expired", "cancelled", "refund_required"]
PROVIDERS: tuple[Provider, ...] = ("vnpay", "momo")
CLOSED_ORDER = ("expired", "cancelled")


# Requests
class CreatePayment(Strict):
    order_id: Id
    provider: Provider


class MomoIpn(BaseModel):
    """MoMo v2's IPN body; fields MoMo may add later are ignored (they are not signed)."""

    model_config = ConfigDict(extra="ignore")
    partnerCode: str  # noqa: N815 (MoMo's field names)
    orderId: str  # noqa: N815
    requestId: str  # noqa: N815
    amount: int
    orderInfo: str = ""  # noqa: N815
    orderType: str = ""  # noqa: N815
    transId: int  # noqa: N815
    resultCode: int  # noqa: N815
    message: str = ""
    payType: str = ""  # noqa: N815
    responseTime: int | None = None  # noqa: N815
    extraData: str = ""  # noqa: N815
    signature: str


# Responses
class PaymentCreated(BaseModel):
    payment_id: int
    order_id: int
    provider: Provider
    amount: int
    status: PaymentStatus
    payment_url: str


class Payment(BaseModel):
    payment_id: int
    order_id: int
    user_id: int
    provider: Provider
    amount: int
    status: PaymentStatus
    txn_ref: str
    transaction_no: str | None
    created_at: dt.datetime
    paid_at: dt.datetime | None
    refunded_at: dt.datetime | None
    failure: str | None
    refund_reason: str | None


class PaymentReturn(BaseModel):
    payment_id: int
    order_id: int
    status: PaymentStatus
    tickets_url: str


class VnpayIpnAnswer(BaseModel):
    RspCode: str
    Message: str


class OrderView(BaseModel):
    """What this service reads of the order service's order."""

    model_config = ConfigDict(extra="ignore")
    id: int
    user_id: int
    status: OrderStatus
    total: int
    expires_at: dt.datetime


class Outcome(enum.Enum):
    """What became of a gateway's result; each gateway words it in its own protocol."""

    APPLIED = "applied"
    ALREADY_APPLIED = "already_applied"
    NOT_FOUND = "not_found"
    WRONG_AMOUNT = "wrong_amount"
    BAD_SIGNATURE = "bad_signature"
    ERROR = "error"


def utc(moment: dt.datetime) -> dt.datetime:
    """An aware datetime; a naive one is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def unpayable(order: OrderView, now: dt.datetime) -> str | None:
    """Why the order cannot be paid now, or None."""
    if order.status != "pending":
        return f"Order {order.id} is {order.status}; only a pending order can be paid"
    if utc(order.expires_at) <= now:
        return f"Order {order.id} expired at {utc(order.expires_at).isoformat()}"
    if order.total <= 0:
        return f"Order {order.id} has nothing to pay"
    return None


def late_reason(
    order_status: str | None, expires_at: dt.datetime | None, now: dt.datetime, paid_before: bool
) -> str | None:
    """Why money that just arrived cannot pay its order (so it must go back), or None."""
    if order_status is None or expires_at is None:
        return "the order is unknown to the payment service"
    if order_status in CLOSED_ORDER:
        return f"the order was {order_status} before the payment arrived"
    if now > utc(expires_at):
        return "the payment arrived after the order expired"
    if paid_before:
        return "the order was already paid by another payment"
    return None


def pay_window_end(now: dt.datetime, order_expires_at: dt.datetime, minutes: int) -> dt.datetime:
    """The gateway's pay page closes with the order's hold, or sooner."""
    return min(now + dt.timedelta(minutes=minutes), utc(order_expires_at))


def txn_ref_suffix() -> str:
    """A random tail for the merchant reference: payment ids start again with a new database,
    while a gateway remembers every reference it saw (MoMo refuses a reused orderId)."""
    return secrets.token_hex(3).upper()


def callback_key(transaction_no: str, txn_ref: str) -> str:
    """The gateway transaction a callback reports. A cancelled VNPay payment carries
    vnp_TransactionNo 0, so a callback without a real number is keyed by its reference."""
    if transaction_no.strip() in ("", "0"):
        return f"{txn_ref}:none"
    return transaction_no


def order_info(order_id: int) -> str:
    # Vietnamese without accents, as VNPay asks.
    return f"Thanh toan ve xem phim don hang {order_id}"


def refund_info(payment_id: int, txn_ref: str) -> str:
    return f"Hoan tien thanh toan {payment_id} ({txn_ref})"


def tickets_url(order_id: int) -> str:
    return f"/v1/orders/{order_id}/tickets"
