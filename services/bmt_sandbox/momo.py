"""The MoMo v2 side: create, the pay page's decision with its IPN and redirect, and refund.

Result codes are MoMo's: 0 success, 13 merchant authentication failed, 20 bad request format,
22 amount out of range, 41 duplicated orderId, 42 order not found, 1006 denied by the user,
1080 refund failed.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from bmt_sandbox import protocol
from bmt_sandbox.ledger import Ledger, MomoOrder, Refused
from bmt_sandbox.vnpay import Decision

ORDER_ID = re.compile(r"^[0-9a-zA-Z]([-_.]*[0-9a-zA-Z]+)*$")
REQUEST_TYPES = ("captureWallet", "payWithMethod", "payWithATM", "payWithCC")
MIN_AMOUNT, MAX_AMOUNT = 1_000, 50_000_000  # the wallet's limits, in VND


def _now_ms() -> int:
    return int(time.time() * 1000)


def _secret(ledger: Ledger) -> str:
    return ledger.settings.momo_secret_key.get_secret_value()


def _checked(ledger: Ledger, body: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Refused("the body must be a JSON object", "20")
    optional = ("accessKey", "extraData", "description")
    missing = [f for f in fields if f not in optional and body.get(f) in (None, "")]
    if missing:
        raise Refused(f"missing fields: {', '.join(missing)}", "20")
    if body.get("partnerCode") != ledger.settings.momo_partner_code:
        raise Refused(f"unknown partnerCode {body.get('partnerCode')!r}", "13")
    if not protocol.momo_valid(_secret(ledger), ledger.settings.momo_access_key, fields, body):
        raise Refused("the signature does not match", "13")
    if not isinstance(body.get("amount"), int) or isinstance(body.get("amount"), bool):
        raise Refused("amount must be a whole number of dong", "20")
    return body


def create(ledger: Ledger, body: Any) -> dict[str, Any]:
    """POST /v2/gateway/api/create: a one-time payment; its payUrl is the sandbox's pay page."""
    body = _checked(ledger, body, protocol.MOMO_CREATE_FIELDS)
    if body["requestType"] not in REQUEST_TYPES:
        raise Refused(f"unknown requestType {body['requestType']!r}", "20")
    if not ORDER_ID.match(str(body["orderId"])):
        raise Refused("orderId has characters MoMo does not accept", "20")
    if not MIN_AMOUNT <= body["amount"] <= MAX_AMOUNT:
        raise Refused(f"amount must be between {MIN_AMOUNT} and {MAX_AMOUNT}", "22")
    if body["orderId"] in ledger.momo:
        raise Refused(f"orderId {body['orderId']} was already used", "41")
    order = MomoOrder(
        order_id=str(body["orderId"]),
        request_id=str(body["requestId"]),
        amount=body["amount"],
        order_info=str(body["orderInfo"]),
        redirect_url=str(body["redirectUrl"]),
        ipn_url=str(body["ipnUrl"]),
        extra_data=str(body.get("extraData") or ""),
        token=secrets.token_urlsafe(16),
    )
    ledger.momo[order.order_id] = order
    query = urlencode(
        {"partnerCode": body["partnerCode"], "orderId": order.order_id, "token": order.token}
    )
    return {
        "partnerCode": body["partnerCode"],
        "orderId": order.order_id,
        "requestId": order.request_id,
        "amount": order.amount,
        "responseTime": _now_ms(),
        "message": "Thành công.",
        "resultCode": 0,
        "payUrl": f"{ledger.settings.public_url.rstrip('/')}/momo/pay?{query}",
        "deeplink": "",
        "qrCodeUrl": "",
    }


def order_of(ledger: Ledger, query: str) -> MomoOrder:
    """The order a pay page URL's query names, checked by its token."""
    params = dict(parse_qsl(query))
    order = ledger.momo.get(params.get("orderId", ""))
    if order is None or not secrets.compare_digest(order.token, params.get("token", "")):
        raise Refused("no such payment", "42")
    if order.result_code is not None:
        raise Refused(f"order {order.order_id} was already paid or cancelled", "41")
    return order


def result_body(ledger: Ledger, order: MomoOrder, success: bool) -> dict[str, Any]:
    """The signed result MoMo POSTs to the ipnUrl (and puts on the redirect)."""
    result: dict[str, Any] = {
        "partnerCode": ledger.settings.momo_partner_code,
        "orderId": order.order_id,
        "requestId": order.request_id,
        "amount": order.amount,
        "orderInfo": order.order_info,
        "orderType": "momo_wallet",
        "transId": ledger.next_number(),
        "resultCode": 0 if success else 1006,
        "message": "Thành công." if success else "Giao dịch bị từ chối bởi người dùng.",
        "payType": "qr",
        "responseTime": _now_ms(),
        "extraData": order.extra_data,
    }
    result["signature"] = protocol.momo_signature(
        _secret(ledger), ledger.settings.momo_access_key, protocol.MOMO_RESULT_FIELDS, result
    )
    return result


async def decide(
    ledger: Ledger, query: str, success: bool, copies: int = 1, parallel: bool = False
) -> Decision:
    order = order_of(ledger, query)
    result = result_body(ledger, order, success)
    order.trans_id, order.result_code = result["transId"], result["resultCode"]
    responses = await ledger.deliver(lambda: ledger.post(order.ipn_url, result), copies, parallel)
    redirect = protocol.with_query(
        order.redirect_url, urlencode({k: str(v) for k, v in result.items()})
    )
    return Decision("momo", str(result["transId"]), redirect, responses)


def craft_ipn(ledger: Ledger, body: dict[str, Any], tamper: str | None) -> dict[str, Any]:
    body = dict(body)
    if "signature" not in body:
        body["signature"] = protocol.momo_signature(
            _secret(ledger), ledger.settings.momo_access_key, protocol.MOMO_RESULT_FIELDS, body
        )
    if tamper == "signature":
        digest = str(body["signature"])
        body["signature"] = digest[:-1] + ("0" if digest[-1:] != "0" else "1")
    elif tamper == "amount":
        amount = body.get("amount")
        body["amount"] = (amount if isinstance(amount, int) else 0) + 1_000
    return body


def refund(ledger: Ledger, body: Any) -> dict[str, Any]:
    """POST /v2/gateway/api/refund: a refund is an order of its own, of a paid transId."""
    body = _checked(ledger, body, protocol.MOMO_REFUND_FIELDS)
    paid = next(
        (o for o in ledger.momo.values() if o.trans_id == body["transId"] and o.result_code == 0),
        None,
    )
    if paid is None:
        raise Refused(f"no successful transaction {body['transId']}", "42")
    if body["orderId"] in ledger.momo or body["requestId"] in ledger.refund_requests:
        raise Refused(f"orderId {body['orderId']} was already used", "41")
    if not 0 < body["amount"] <= paid.amount - paid.refunded:
        raise Refused(f"at most {paid.amount - paid.refunded} can be refunded", "1080")
    ledger.refund_requests.add(str(body["requestId"]))
    paid.refunded += body["amount"]
    trans_id = ledger.next_number()
    ledger.record_refund(
        provider="momo",
        txn_ref=paid.order_id,
        transaction_no=str(paid.trans_id),
        amount=body["amount"],
        request_id=str(body["requestId"]),
        reason=str(body["description"]),
    )
    return {
        "partnerCode": body["partnerCode"],
        "orderId": body["orderId"],
        "requestId": body["requestId"],
        "amount": body["amount"],
        "transId": trans_id,
        "resultCode": 0,
        "message": "Thành công.",
        "responseTime": _now_ms(),
    }
