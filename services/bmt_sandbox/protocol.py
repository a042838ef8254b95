"""The gateways' signatures, written here afresh (services never import each other): if the
payment service and the sandbox disagree on a byte, their tests show it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus, urlencode

GMT7 = dt.timezone(dt.timedelta(hours=7), "GMT+7")
VNP_DATE = "%Y%m%d%H%M%S"

VNP_REFUND_FIELDS = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TransactionType",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_TransactionNo",
    "vnp_TransactionDate",
    "vnp_CreateBy",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
VNP_QUERYDR_FIELDS = (
    "vnp_RequestId",
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_TransactionDate",
    "vnp_CreateDate",
    "vnp_IpAddr",
    "vnp_OrderInfo",
)
# The merchant web API signs its answers the same way, over these fields.
VNP_API_RESPONSE_FIELDS = (
    "vnp_ResponseId",
    "vnp_Command",
    "vnp_ResponseCode",
    "vnp_Message",
    "vnp_TmnCode",
    "vnp_TxnRef",
    "vnp_Amount",
    "vnp_BankCode",
    "vnp_PayDate",
    "vnp_TransactionNo",
    "vnp_TransactionType",
    "vnp_TransactionStatus",
    "vnp_OrderInfo",
)

MOMO_CREATE_FIELDS = (
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
MOMO_RESULT_FIELDS = (
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
MOMO_REFUND_FIELDS = (
    "accessKey",
    "amount",
    "description",
    "orderId",
    "partnerCode",
    "requestId",
    "transId",
)


def vnp_date(moment: dt.datetime) -> str:
    return moment.astimezone(GMT7).strftime(VNP_DATE)


def vnp_parse_date(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, VNP_DATE).replace(tzinfo=GMT7)
    except ValueError:
        return None


def _vnp_signed_items(params: Mapping[str, str]) -> list[tuple[str, str]]:
    return sorted(
        (k, v)
        for k, v in params.items()
        if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType") and v
    )


def _hmac512(secret: str, data: str) -> str:
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


def vnp_hash(secret: str, params: Mapping[str, str]) -> str:
    data = "&".join(f"{k}={quote_plus(v)}" for k, v in _vnp_signed_items(params))
    return _hmac512(secret, data)


def vnp_valid(secret: str, params: Mapping[str, str]) -> bool:
    return hmac.compare_digest(vnp_hash(secret, params), params.get("vnp_SecureHash", "").lower())


def vnp_query(params: Mapping[str, str]) -> str:
    """The signed params as a query string, the hash last, as VNPay sends them."""
    items = _vnp_signed_items(params)
    if "vnp_SecureHash" in params:
        items.append(("vnp_SecureHash", params["vnp_SecureHash"]))
    return urlencode(items, quote_via=quote_plus)


def vnp_pipe_hash(secret: str, params: Mapping[str, object], fields: Iterable[str]) -> str:
    return _hmac512(secret, "|".join(str(params.get(f, "")) for f in fields))


def _momo_text(value: object) -> str:
    return "" if value is None else str(value)


def momo_signature(
    secret: str, access_key: str, fields: Iterable[str], values: Mapping[str, object]
) -> str:
    merged = {**values, "accessKey": access_key}
    raw = "&".join(f"{f}={_momo_text(merged.get(f))}" for f in fields)
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()


def momo_valid(
    secret: str, access_key: str, fields: Iterable[str], values: Mapping[str, object]
) -> bool:
    given = _momo_text(values.get("signature")).lower()
    return hmac.compare_digest(momo_signature(secret, access_key, fields, values), given)


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"
