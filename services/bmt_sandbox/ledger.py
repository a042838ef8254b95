"""What the sandbox remembers (in memory, for the life of the process) and how it calls the
merchant back."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from bmt_sandbox.settings import SandboxSettings


class Refused(Exception):
    """The gateway refuses a request; `reason` is shown to the customer or the merchant."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class VnpayTransaction:
    txn_ref: str
    transaction_no: str
    amount: int  # vnp_Amount: hundredths of a dong
    order_info: str
    create_date: str
    pay_date: str
    response_code: str
    transaction_status: str
    refunded: int = 0  # hundredths of a dong


@dataclass
class MomoOrder:
    order_id: str
    request_id: str
    amount: int
    order_info: str
    redirect_url: str
    ipn_url: str
    extra_data: str
    token: str
    trans_id: int | None = None
    result_code: int | None = None
    refunded: int = 0


@dataclass
class Ledger:
    settings: SandboxSettings
    http: aiohttp.ClientSession
    vnpay: dict[str, VnpayTransaction] = field(default_factory=dict)  # by vnp_TxnRef
    momo: dict[str, MomoOrder] = field(default_factory=dict)  # by orderId
    refunds: list[dict[str, Any]] = field(default_factory=list)
    refund_requests: set[str] = field(default_factory=set)
    # Gateway transaction numbers: increasing, and unlikely to repeat across restarts.
    _numbers: itertools.count[int] = field(
        default_factory=lambda: itertools.count(int(time.time() * 10) % 10**10)
    )

    def next_number(self) -> int:
        return next(self._numbers)

    def record_refund(self, **fields: Any) -> dict[str, Any]:
        entry = {**fields, "received_at": dt.datetime.now(dt.UTC).isoformat()}
        self.refunds.append(entry)
        return entry

    async def _answer(self, response: aiohttp.ClientResponse) -> dict[str, Any]:
        text = await response.text()
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        return {"status": response.status, "body": body}

    def _timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.settings.ipn_timeout_seconds)

    async def get(self, url: str) -> dict[str, Any]:
        """VNPay's IPN: a GET of the signed query; the answer as {status, body}."""
        try:
            async with self.http.get(URL(url, encoded=True), timeout=self._timeout()) as r:
                return await self._answer(r)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return {"status": 0, "body": f"not delivered: {exc!r}"}

    async def post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """MoMo's IPN: a POST of the signed JSON; the answer as {status, body}."""
        try:
            async with self.http.post(url, json=body, timeout=self._timeout()) as r:
                return await self._answer(r)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return {"status": 0, "body": f"not delivered: {exc!r}"}

    async def deliver(
        self,
        send: Callable[[], Awaitable[dict[str, Any]]],
        copies: int,
        parallel: bool = False,
    ) -> list[dict[str, Any]]:
        """`copies` deliveries of one callback, like a gateway that retries."""
        if parallel:
            return list(await asyncio.gather(*(send() for _ in range(copies))))
        return [await send() for _ in range(copies)]
