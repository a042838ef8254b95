"""MoMo v2 (one-time payments): the signed create request, result verification and refunds.

The functions are pure; `MomoGateway` is the adapter that adds the HTTP calls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from bmt_payment import domain
from bmt_payment.domain import Outcome, Provider
from bmt_payment.gateway import Checkout, GatewayError, Refund, RefundOutcome, Result
from bmt_payment.settings import PaymentSettings

REQUEST_TYPE = "captureWallet"
# The signed fields of each message, in MoMo's (alphabetical) order; accessKey is the merchant's.
CREATE_FIELDS = (
    "accessKey",
    "amount",
    "extraData",
    "ipnUrl",
    "orderId",
    "orderInfo",
    "partnerCode",
    "redirectUrl",
    "requestId",
    "requestType",
)
RESULT_FIELDS = (
    "accessKey",
    "amount",
    "extraData",
    "message",
    "orderId",
    "orderInfo",
    "orderType",
    "partnerCode",
    "payType",
    "requestId",
    "responseTime",
    "resultCode",
    "transId",
)
REFUND_FIELDS = (
    "accessKey",
    "amount",
    "description",
    "orderId",
    "partnerCode",
    "requestId",
    "transId",
)

# The HTTP status of the IPN answer: 204 tells MoMo to stop retrying.
IPN_STATUSES: dict[Outcome, int] = {
    Outcome.APPLIED: 204,
    Outcome.ALREADY_APPLIED: 204,
    Outcome.NOT_FOUND: 400,
    Outcome.WRONG_AMOUNT: 400,
    Outcome.BAD_SIGNATURE: 400,
    Outcome.ERROR: 500,
}


def _text(value: object) -> str:
    """A value as it appears in the signed string (JSON numbers as their digits)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def raw_signature(fields: Iterable[str], values: Mapping[str, object], access_key: str) -> str:
    merged = {**values, "accessKey": access_key}
    return "&".join(f"{name}={_text(merged.get(name))}" for name in fields)


def signature(secret: str, raw: str) -> str:
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()


def extra_data(data: Mapping[str, Any]) -> str:
    """MoMo's extraData: base64 of a JSON object."""
    return base64.b64encode(json.dumps(dict(data), separators=(",", ":")).encode()).decode()


def create_request(
    *,
    partner_code: str,
    access_key: str,
    secret: str,
    request_id: str,
    order_id: str,
    amount: int,
    order_info: str,
    redirect_url: str,
    ipn_url: str,
    extra: str = "",
    lang: str = "vi",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partnerCode": partner_code,
        "requestId": request_id,
        "amount": amount,
        "orderId": order_id,
        "orderInfo": order_info,
        "redirectUrl": redirect_url,
        "ipnUrl": ipn_url,
        "requestType": REQUEST_TYPE,
        "extraData": extra,
        "lang": lang,
    }
    body["signature"] = signature(secret, raw_signature(CREATE_FIELDS, body, access_key))
    return body


def sign_result(params: Mapping[str, object], access_key: str, secret: str) -> str:
    return signature(secret, raw_signature(RESULT_FIELDS, params, access_key))


def verify_result(params: Mapping[str, object], access_key: str, secret: str) -> bool:
    """An IPN body or the redirect's query: its signature is MoMo's (HMAC-SHA256)."""
    given = _text(params.get("signature")).lower()
    return hmac.compare_digest(sign_result(params, access_key, secret), given)


def refund_request(
    *,
    partner_code: str,
    access_key: str,
    secret: str,
    request_id: str,
    order_id: str,
    amount: int,
    trans_id: int,
    description: str,
    lang: str = "vi",
) -> dict[str, Any]:
    """A signed refund; orderId is a new reference of the refund itself, transId the payment's."""
    body: dict[str, Any] = {
        "partnerCode": partner_code,
        "orderId": order_id,
        "requestId": request_id,
        "amount": amount,
        "transId": trans_id,
        "lang": lang,
        "description": description,
    }
    body["signature"] = signature(secret, raw_signature(REFUND_FIELDS, body, access_key))
    return body


def _whole(value: object) -> int | None:
    text = _text(value)
    return int(text) if text.isdigit() else None


def result_of(params: Mapping[str, object]) -> Result:
    code = _text(params.get("resultCode"))
    return Result(
        txn_ref=_text(params.get("orderId")),
        amount=_whole(params.get("amount")),
        transaction_no=_text(params.get("transId")),
        success=code == "0",
        code=code,
        message=_text(params.get("message")),
        params={k: _text(v) for k, v in params.items() if k != "signature"},
    )


def ipn_status(outcome: Outcome) -> int:
    return IPN_STATUSES[outcome]


class MomoGateway:
    provider: Provider = "momo"

    def __init__(self, settings: PaymentSettings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http

    @property
    def _secret(self) -> str:
        return self.settings.momo_secret_key.get_secret_value()

    async def _post(self, url: str, body: dict[str, Any], what: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.settings.gateway_timeout_seconds)
        try:
            async with self.http.post(url, json=body, timeout=timeout) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise GatewayError(f"MoMo could not be reached for the {what}: {exc!r}") from None
        if not isinstance(answer, dict):
            raise GatewayError(f"MoMo answered the {what} with HTTP {status} and no object")
        if status != 200 or answer.get("resultCode") != 0:
            message = answer.get("message") or answer.get("detail") or "no message"
            raise GatewayError(
                f"MoMo refused the {what} (HTTP {status}, resultCode"
                f" {answer.get('resultCode')}): {message}"
            )
        return answer

    async def create(self, checkout: Checkout) -> str:
        body = create_request(
            partner_code=self.settings.momo_partner_code,
            access_key=self.settings.momo_access_key,
            secret=self._secret,
            request_id=uuid.uuid4().hex,
            order_id=checkout.txn_ref,
            amount=checkout.amount,
            order_info=checkout.order_info,
            redirect_url=self.settings.return_url("momo"),
            ipn_url=self.settings.ipn_url("momo"),
            extra=extra_data({"order_id": checkout.order_id, "payment_id": checkout.payment_id}),
        )
        answer = await self._post(self.settings.momo_create_url, body, "payment")
        if answer.get("orderId") != checkout.txn_ref or not answer.get("payUrl"):
            raise GatewayError("MoMo's answer names another order or has no payUrl")
        return str(answer["payUrl"])

    def verify(self, params: Mapping[str, object]) -> Result | None:
        if _text(params.get("partnerCode")) != self.settings.momo_partner_code:
            return None
        if not verify_result(params, self.settings.momo_access_key, self._secret):
            return None
        return result_of(params)

    async def refund(self, refund: Refund) -> RefundOutcome:
        if not refund.transaction_no.isdigit():
            raise GatewayError(f"MoMo transId {refund.transaction_no!r} is not a number")
        body = refund_request(
            partner_code=self.settings.momo_partner_code,
            access_key=self.settings.momo_access_key,
            secret=self._secret,
            request_id=uuid.uuid4().hex,
            # A refund is an order of its own at MoMo, with a reference of its own.
            order_id=f"{refund.txn_ref}-R{uuid.uuid4().hex[:10]}",
            amount=refund.amount,
            trans_id=int(refund.transaction_no),
            description=domain.refund_info(refund.payment_id, refund.txn_ref),
        )
        try:
            answer = await self._post(self.settings.momo_refund_url, body, "refund")
        except GatewayError as exc:
            return RefundOutcome(ok=False, code="error", message=str(exc))
        return RefundOutcome(ok=True, code="0", message=str(answer.get("message", "")))
