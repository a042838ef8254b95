"""The sandbox gateway's routes and app factory: VNPay's and MoMo's endpoints as a merchant
sees them, the pages a customer sees, and a driver for tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from pydantic import BaseModel, Field

from bmt_common.app import create_app
from bmt_common.fields import Strict
from bmt_common.inputs import body_of
from bmt_common.problems import Problem
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_sandbox import momo, pages, protocol, vnpay
from bmt_sandbox.ledger import Ledger, Refused
from bmt_sandbox.settings import SandboxSettings
from bmt_sandbox.vnpay import Decision

api = Api(
    "BMT sandbox payment gateway",
    "A local stand-in for VNPay 2.1.0 and MoMo v2, byte for byte on the wire; no money moves.",
)
SETTINGS = web.AppKey("settings", SandboxSettings)
LEDGER = web.AppKey("ledger", Ledger)

Outcome = Literal["success", "failed"]
VNPAY_PAGE = "/vnpay/paymentv2/vpcpay.html"
MOMO_PAGE = "/momo/pay"


class PayRequest(Strict):
    payment_url: str
    outcome: Outcome
    ipn_copies: int = Field(default=1, ge=1, le=20)
    # Send the copies at once rather than one after the other (a race of retries).
    parallel: bool = False


class IpnResponse(BaseModel):
    status: int  # 0 when the IPN could not be delivered
    body: Any


class PayResult(BaseModel):
    provider: Literal["vnpay", "momo"]
    transaction_no: str
    return_url: str
    ipn_responses: list[IpnResponse]


class CraftedVnpayIpn(Strict):
    """Either the result params themselves, or a payment URL whose result is made up (as a
    decision would, but nothing is recorded)."""

    params: dict[str, str] | None = None
    payment_url: str | None = None
    outcome: Outcome = "success"
    tamper: Literal["signature", "amount"] | None = None


class CraftedMomoIpn(Strict):
    body: dict[str, Any]
    tamper: Literal["signature", "amount"] | None = None


class RefundList(BaseModel):
    items: list[dict[str, Any]]


def _ledger(request: web.Request) -> Ledger:
    return request.app[LEDGER]


def _outcome(form: Mapping[str, Any]) -> bool:
    outcome = form.get("outcome")
    if outcome not in ("success", "failed"):
        raise Refused("outcome must be success or failed")
    return bool(outcome == "success")


# VNPay
@api.route("GET", VNPAY_PAGE, summary="VNPay's pay page: checks the signed request", tag="vnpay")
async def vnpay_page(request: web.Request) -> web.Response:
    ledger = _ledger(request)
    query = request.rel_url.raw_query_string
    params = vnpay.parse(query)
    try:
        vnpay.check_pay_request(ledger, params, dt.datetime.now(dt.UTC))
    except Refused as exc:
        return pages.refused("VNPay sandbox", exc.reason)
    amount = int(params["vnp_Amount"]) // 100
    return pages.pay_form(
        "VNPay sandbox",
        {
            "Merchant": params["vnp_TmnCode"],
            "Order": params["vnp_TxnRef"],
            "Amount": f"{amount:,} VND",
            "Description": params["vnp_OrderInfo"],
        },
        "/vnpay/decide",
        {"query": query},
    )


@api.route("POST", "/vnpay/decide", summary="The pay page's buttons", tag="vnpay")
async def vnpay_decide(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        decision = await vnpay.decide(_ledger(request), str(form.get("query", "")), _outcome(form))
    except Refused as exc:
        return pages.refused("VNPay sandbox", exc.reason)
    raise web.HTTPFound(decision.return_url)


@api.route(
    "POST",
    "/vnpay/merchant_webapi/api/transaction",
    summary="VNPay's merchant web API: refund and querydr (HTTP 200 with a vnp_ResponseCode)",
    tag="vnpay",
)
async def vnpay_transaction(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    return web.json_response(vnpay.merchant_api(_ledger(request), body))


# MoMo
async def _momo_json(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _momo_problem(exc: Refused) -> Problem:
    code = int(exc.code) if exc.code.isdigit() else 99
    return Problem(400, exc.reason, resultCode=code, message=exc.reason)


@api.route(
    "POST",
    "/momo/v2/gateway/api/create",
    summary="MoMo's create (one-time payment); answers a payUrl",
    tag="momo",
    errors=(400,),
)
async def momo_create(request: web.Request) -> web.Response:
    try:
        return web.json_response(momo.create(_ledger(request), await _momo_json(request)))
    except Refused as exc:
        raise _momo_problem(exc) from None


@api.route("GET", MOMO_PAGE, summary="MoMo's pay page", tag="momo")
async def momo_page(request: web.Request) -> web.Response:
    query = request.rel_url.raw_query_string
    try:
        order = momo.order_of(_ledger(request), query)
    except Refused as exc:
        return pages.refused("MoMo sandbox", exc.reason)
    return pages.pay_form(
        "MoMo sandbox",
        {
            "Order": order.order_id,
            "Amount": f"{order.amount:,} VND",
            "Description": order.order_info,
        },
        "/momo/decide",
        {"query": query},
    )


@api.route("POST", "/momo/decide", summary="The pay page's buttons", tag="momo")
async def momo_decide(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        decision = await momo.decide(_ledger(request), str(form.get("query", "")), _outcome(form))
    except Refused as exc:
        return pages.refused("MoMo sandbox", exc.reason)
    raise web.HTTPFound(decision.return_url)


@api.route(
    "POST",
    "/momo/v2/gateway/api/refund",
    summary="MoMo's refund of a paid transId",
    tag="momo",
    errors=(400,),
)
async def momo_refund(request: web.Request) -> web.Response:
    try:
        return web.json_response(momo.refund(_ledger(request), await _momo_json(request)))
    except Refused as exc:
        raise _momo_problem(exc) from None


# The driver for tests and demos
@api.route(
    "POST",
    "/sandbox/pay",
    summary="Pay or cancel a VNPay or MoMo payment URL as the buttons do; IPN sent N times",
    tag="driver",
    body=PayRequest,
    response=PayResult,
    errors=(400,),
)
async def drive_payment(request: web.Request) -> web.Response:
    body, ledger = body_of(request, PayRequest), _ledger(request)
    url = urlsplit(body.payment_url)
    success = body.outcome == "success"
    try:
        decision: Decision
        if url.path.endswith(VNPAY_PAGE):
            decision = await vnpay.decide(
                ledger, url.query, success, body.ipn_copies, body.parallel
            )
        elif url.path.endswith(MOMO_PAGE):
            decision = await momo.decide(ledger, url.query, success, body.ipn_copies, body.parallel)
        else:
            raise Refused(f"{url.path!r} is neither a VNPay nor a MoMo pay page")
    except Refused as exc:
        raise Problem(400, f"The gateway refuses this payment: {exc.reason}") from None
    return json_response(
        PayResult(
            provider=decision.provider,
            transaction_no=decision.transaction_no,
            return_url=decision.return_url,
            ipn_responses=[IpnResponse.model_validate(r) for r in decision.ipn_responses],
        )
    )


@api.route(
    "POST",
    "/sandbox/ipn/vnpay",
    summary="Send a crafted VNPay IPN (signed unless it has a vnp_SecureHash), maybe tampered",
    tag="driver",
    body=CraftedVnpayIpn,
    response=IpnResponse,
)
async def craft_vnpay_ipn(request: web.Request) -> web.Response:
    body, ledger = body_of(request, CraftedVnpayIpn), _ledger(request)
    if (body.params is None) == (body.payment_url is None):
        raise Problem(422, "Give either params or payment_url")
    if body.payment_url is not None:
        request_params = vnpay.parse(urlsplit(body.payment_url).query)
        try:
            params = vnpay.made_up_result(ledger, request_params, body.outcome == "success")
        except Refused as exc:
            raise Problem(400, f"This is not a VNPay payment URL: {exc.reason}") from None
    else:
        params = body.params or {}
    query = vnpay.craft_ipn(ledger, params, body.tamper)
    answer = await ledger.get(protocol.with_query(ledger.settings.vnpay_ipn_url, query))
    return json_response(IpnResponse.model_validate(answer))


@api.route(
    "POST",
    "/sandbox/ipn/momo",
    summary="Send a crafted MoMo IPN (signed unless it brings a signature), maybe tampered",
    tag="driver",
    body=CraftedMomoIpn,
    response=IpnResponse,
)
async def craft_momo_ipn(request: web.Request) -> web.Response:
    body, ledger = body_of(request, CraftedMomoIpn), _ledger(request)
    crafted = momo.craft_ipn(ledger, body.body, body.tamper)
    answer = await ledger.post(ledger.settings.momo_ipn_url, crafted)
    return json_response(IpnResponse.model_validate(answer))


@api.route(
    "GET",
    "/sandbox/refunds",
    summary="The refunds the sandbox accepted, oldest first",
    tag="driver",
    response=RefundList,
)
async def list_refunds(request: web.Request) -> web.Response:
    return json_response(RefundList(items=_ledger(request).refunds))


async def ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession() as http:
        app[LEDGER] = Ledger(app[SETTINGS], http)
        yield


def make_app(settings: SandboxSettings) -> web.Application:
    app = create_app("sandbox", api, verifier=None, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(ledger_ctx)
    return app
