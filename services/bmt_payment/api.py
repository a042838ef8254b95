"""The payment service's routes: opening a payment, the gateways' IPNs and return URLs, and
reading a payment."""

from __future__ import annotations

import datetime as dt
import logging

import aiohttp
import asyncpg
from aiohttp import web
from pydantic import ValidationError

from bmt_common.db import POOL
from bmt_common.inputs import body_of, claims_of, path_id
from bmt_common.problems import Problem
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_payment import domain, flows, momo, vnpay
from bmt_payment import repository as repo
from bmt_payment.domain import (
    CreatePayment,
    MomoIpn,
    OrderView,
    Outcome,
    Payment,
    PaymentCreated,
    PaymentReturn,
    Provider,
    VnpayIpnAnswer,
)
from bmt_payment.gateway import Checkout, Gateway, GatewayError, Result
from bmt_payment.settings import PaymentSettings

log = logging.getLogger(__name__)
api = Api(
    "BMT payment service",
    "Payments of orders through VNPay and MoMo: the signed requests, the gateways' callbacks "
    "(applied once, the IPN being the authority) and refunds of payments that came too late.",
)
SETTINGS = web.AppKey("settings", PaymentSettings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
GATEWAYS = web.AppKey("gateways", dict[str, Gateway])
REFUNDER = web.AppKey("refunder", flows.Refunder)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _payment(row: asyncpg.Record) -> Payment:
    return Payment.model_validate({**dict(row), "payment_id": row["id"]})


def _client_ip(request: web.Request) -> str:
    # Behind the gateway, which sets X-Forwarded-For to the client it saw.
    forwarded = request.headers.get("X-Forwarded-For", "")
    return forwarded.split(",")[0].strip() or request.remote or "127.0.0.1"


async def _read_order(request: web.Request, order_id: int) -> OrderView:
    """The order as the order service shows it to the caller (whose token is passed on)."""
    settings = request.app[SETTINGS]
    headers = {"Authorization": request.headers["Authorization"]}
    if "X-Request-Id" in request.headers:
        headers["X-Request-Id"] = request.headers["X-Request-Id"]
    url = f"{settings.order_url.rstrip('/')}/v1/orders/{order_id}"
    timeout = aiohttp.ClientTimeout(total=settings.order_timeout_seconds)
    try:
        async with request.app[HTTP].get(url, headers=headers, timeout=timeout) as response:
            if response.status in (403, 404):
                raise Problem(404, f"Order {order_id} was not found")
            if response.status != 200:
                raise Problem(502, f"The order service answered HTTP {response.status}")
            raw = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Problem(502, f"The order service cannot be reached: {exc!r}") from None
    try:
        return OrderView.model_validate_json(raw)
    except ValidationError:
        raise Problem(
            502, "The order service answered with an order this service cannot read"
        ) from None


@api.route(
    "POST",
    "/v1/payments",
    summary="Start paying a pending order through VNPay or MoMo; open payment_url to pay",
    tag="payments",
    auth="customer",
    body=CreatePayment,
    response=PaymentCreated,
    status=201,
    errors=(404, 409, 502),
)
async def create_payment(request: web.Request) -> web.Response:
    body, claims = body_of(request, CreatePayment), claims_of(request)
    settings, now = request.app[SETTINGS], _now()
    order = await _read_order(request, body.order_id)
    if str(order.user_id) != claims.sub:
        raise Problem(404, f"Order {body.order_id} was not found")
    reason = domain.unpayable(order, now)
    if reason:
        raise Problem(409, reason)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        local = await repo.upsert_order(
            conn, order.id, order.user_id, order.total, order.status, order.expires_at
        )
        if local in domain.CLOSED_ORDER:
            raise Problem(409, f"Order {order.id} is {local}; only a pending order can be paid")
        if await repo.order_paid(conn, order.id):
            raise Problem(409, f"Order {order.id} is already paid")
        # The amount is the order's, never the client's.
        row = await repo.create_payment(
            conn, order.id, order.user_id, body.provider, order.total, domain.txn_ref_suffix()
        )
    checkout = Checkout(
        payment_id=row["id"],
        order_id=order.id,
        txn_ref=row["txn_ref"],
        amount=row["amount"],
        created_at=row["created_at"],
        expires_at=domain.pay_window_end(now, order.expires_at, settings.payment_minutes),
        client_ip=_client_ip(request),
        order_info=domain.order_info(order.id),
    )
    try:
        url = await request.app[GATEWAYS][body.provider].create(checkout)
    except GatewayError as exc:
        async with request.app[POOL].acquire() as conn:
            await repo.fail_unopened(conn, row["id"], str(exc))
        raise Problem(502, f"The payment could not be opened at {body.provider}: {exc}") from None
    return json_response(
        PaymentCreated(
            payment_id=row["id"],
            order_id=order.id,
            provider=body.provider,
            amount=row["amount"],
            status=row["status"],
            payment_url=url,
        ),
        201,
    )


async def _settle(request: web.Request, provider: Provider, result: Result) -> Outcome:
    outcome, refund = await flows.apply_result(request.app[POOL], provider, result, _now())
    log.info(
        "%s result for %s: %s",
        provider,
        result.txn_ref,
        outcome.value,
        extra={"transaction_no": result.transaction_no, "code": result.code},
    )
    if refund is not None:
        # After the commit; a refund that fails here is retried by the refunder's sweep.
        try:
            await request.app[REFUNDER].refund(refund)
        except Exception:  # the result is applied either way; the sweep retries the refund
            log.exception("refund of payment %s failed; it will be retried", refund)
    return outcome


@api.route(
    "GET",
    "/v1/payments/vnpay/ipn",
    summary="VNPay's IPN (server to server); answers VNPay's RspCode, always with HTTP 200",
    tag="gateways",
    response=VnpayIpnAnswer,
)
async def vnpay_ipn(request: web.Request) -> web.Response:
    # VNPay sends many parameters: they are read as they come, and checked by their signature.
    params = {k: v for k, v in request.query.items() if k.startswith("vnp_")}
    try:
        result = request.app[GATEWAYS]["vnpay"].verify(params)
        if result is None:
            log.warning(
                "VNPay IPN with an invalid signature", extra={"txn": params.get("vnp_TxnRef")}
            )
            outcome = Outcome.BAD_SIGNATURE
        else:
            outcome = await _settle(request, "vnpay", result)
    except Exception:  # VNPay expects an answer whatever happens: 99 says "try again"
        log.exception("VNPay IPN failed")
        outcome = Outcome.ERROR
    return web.json_response(vnpay.ipn_answer(outcome))


@api.route(
    "POST",
    "/v1/payments/momo/ipn",
    summary="MoMo's IPN (server to server); 204 once applied",
    tag="gateways",
    body=MomoIpn,
    status=204,
    errors=(400,),
)
async def momo_ipn(request: web.Request) -> web.Response:
    body = body_of(request, MomoIpn)
    result = request.app[GATEWAYS]["momo"].verify(body.model_dump())
    if result is None:
        raise Problem(400, "The signature or partner code of this MoMo IPN is not valid")
    outcome = await _settle(request, "momo", result)
    if outcome is Outcome.NOT_FOUND:
        raise Problem(400, f"No MoMo payment has orderId {body.orderId!r}")
    if outcome is Outcome.WRONG_AMOUNT:
        raise Problem(400, f"The amount {body.amount} is not the amount of {body.orderId!r}")
    return web.Response(status=momo.ipn_status(outcome))


async def _returned(request: web.Request, provider: Provider, ref_name: str) -> web.Response:
    params = dict(request.query)
    result = request.app[GATEWAYS][provider].verify(params)
    if result is None:
        raise Problem(400, f"These return parameters are not signed by {provider}")
    async with request.app[POOL].acquire() as conn:
        row = await repo.payment_by_txn_ref(conn, result.txn_ref)
    if row is None or row["provider"] != provider:
        raise Problem(404, f"No {provider} payment has {ref_name} {result.txn_ref!r}")
    # Display only: the IPN, not the browser, changes a payment.
    return json_response(
        PaymentReturn(
            payment_id=row["id"],
            order_id=row["order_id"],
            status=row["status"],
            tickets_url=domain.tickets_url(row["order_id"]),
        )
    )


@api.route(
    "GET",
    "/v1/payments/vnpay/return",
    summary="Where VNPay sends the browser back; shows the payment, changes nothing",
    tag="gateways",
    response=PaymentReturn,
    errors=(400, 404),
)
async def vnpay_return(request: web.Request) -> web.Response:
    return await _returned(request, "vnpay", "vnp_TxnRef")


@api.route(
    "GET",
    "/v1/payments/momo/return",
    summary="Where MoMo sends the browser back; shows the payment, changes nothing",
    tag="gateways",
    response=PaymentReturn,
    errors=(400, 404),
)
async def momo_return(request: web.Request) -> web.Response:
    return await _returned(request, "momo", "orderId")


# Registered after the literal /v1/payments/... routes, which it would otherwise shadow.
@api.route(
    "GET",
    "/v1/payments/{id}",
    summary="A payment: its owner's or any, for an admin",
    tag="payments",
    auth="user",
    response=Payment,
    errors=(404,),
)
async def read_payment(request: web.Request) -> web.Response:
    payment_id, claims = path_id(request), claims_of(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.payment_by_id(conn, payment_id)
    if row is None or (claims.role != "admin" and str(row["user_id"]) != claims.sub):
        raise Problem(404, f"Payment {payment_id} was not found")
    return json_response(_payment(row))
