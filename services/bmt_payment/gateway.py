"""The adapter every payment gateway implements; adding a provider is one module like
`vnpay.py` or `momo.py` and one entry in the app's gateway table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from bmt_payment.domain import Provider


class GatewayError(Exception):
    """The gateway refused a request or could not be reached; the words are fit for a client."""


@dataclass(frozen=True)
class Checkout:
    """A payment to open at the gateway."""

    payment_id: int
    order_id: int
    txn_ref: str
    amount: int  # VND
    created_at: dt.datetime
    expires_at: dt.datetime
    client_ip: str
    order_info: str


@dataclass(frozen=True)
class Result:
    """A payment's outcome as a gateway reported it, its signature already checked."""

    txn_ref: str
    amount: int | None  # VND; None when the gateway's figure is not a whole amount
    transaction_no: str
    success: bool
    code: str
    message: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refund:
    """A full refund of a paid payment."""

    payment_id: int
    txn_ref: str
    amount: int  # VND
    transaction_no: str
    created_at: dt.datetime  # when the payment was opened (VNPay's vnp_TransactionDate)
    reason: str


@dataclass(frozen=True)
class RefundOutcome:
    ok: bool
    code: str
    message: str


class Gateway(Protocol):
    provider: Provider

    async def create(self, checkout: Checkout) -> str:
        """The URL the customer opens to pay; raises GatewayError."""
        ...

    def verify(self, params: Mapping[str, object]) -> Result | None:
        """The result a gateway sent (IPN or return URL), or None if it is not signed by it."""
        ...

    async def refund(self, refund: Refund) -> RefundOutcome:
        """Ask the gateway to give the money back; raises GatewayError if it cannot be asked."""
        ...
