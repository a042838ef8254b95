"""VNPay API 2.1.0: the signed payment URL, result verification, the IPN answer and refunds.

The functions are pure; `VnpayGateway` is the adapter that adds the HTTP calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import quote_plus, urlencode

import aiohttp

from bmt_payment import domain
from bmt_payment.domain import Outcome, Provider
from bmt_payment.gateway import Checkout, GatewayError, Refund, RefundOutcome, Result
from bmt_payment.settings import PaymentSettings

VERSION = "2.1.0"
GMT7 = dt.timezone(dt.timedelta(hours=7), "GMT+7")
DATE_FORMAT = "%Y%m%d%H%M%S"
HASH_FIELDS = ("vnp_SecureHash", "vnp_SecureHashType")

# The pipe-joined fields signed by the merchant web API's requests, in this order.
REFUND_FIELDS = (
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
QUERYDR_FIELDS = (
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

# The IPN answer VNPay expects for each outcome (HTTP 200 always).
IPN_ANSWERS: dict[Outcome, tuple[str, str]] = {
    Outcome.APPLIED: ("00", "Confirm Success"),
    Outcome.NOT_FOUND: ("01", "Order not found"),
    Outcome.ALREADY_APPLIED: ("02", "Order already confirmed"),
    Outcome.WRONG_AMOUNT: ("04", "Invalid amount"),
    Outcome.BAD_SIGNATURE: ("97", "Invalid signature"),
    Outcome.ERROR: ("99", "Unknown error"),
}

# vnp_ResponseCode of a payment result.
RESPONSE_MESSAGES = {
    "00": "Approved",
    "01": "Transaction already exists",
    "02": "Invalid merchant",
    "03": "Invalid data format",
    "04": "Website locked",
    "05": "Too many wrong passwords",
    "06": "Wrong OTP",
    "07": "Suspicious transaction",
    "08": "Bank under maintenance",
    "09": "Card or account has no Internet Banking",
    "10": "Wrong card details more than 3 times",
    "11": "Payment timed out",
    "24": "Customer cancelled",
    "51": "Insufficient balance",
    "65": "Daily limit exceeded",
    "75": "Bank under maintenance",
}

# vnp_ResponseCode of the merchant web API (refund, querydr).
API_MESSAGES = {
    "00": "Success",
    "02": "Invalid merchant",
    "03": "Invalid data format",
    "91": "Transaction not found",
    "94": "Duplicate request",
    "95": "Transaction not successful at VNPay",
    "97": "Invalid checksum",
    "99": "Other error",
}


def format_date(moment: dt.datetime) -> str:
    """yyyyMMddHHmmss in GMT+7, VNPay's only time zone."""
    if moment.tzinfo is None:
        raise ValueError("a VNPay date needs an aware datetime")
    return moment.astimezone(GMT7).strftime(DATE_FORMAT)


def parse_date(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, DATE_FORMAT).replace(tzinfo=GMT7)


def hash_data(params: Mapping[str, str]) -> str:
    """The signed string: non-empty vnp_* params but the hash itself, sorted by key, values
    form-encoded (space as +), joined with &."""
    return "&".join(
        f"{key}={quote_plus(value)}"
        for key, value in sorted(params.items())
        if key.startswith("vnp_") and key not in HASH_FIELDS and value != ""
    )


def secure_hash(secret: str, data: str) -> str:
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


def sign(params: Mapping[str, str], secret: str) -> dict[str, str]:
    """The params with their vnp_SecureHash."""
    signed = {k: v for k, v in params.items() if k not in HASH_FIELDS}
    signed["vnp_SecureHash"] = secure_hash(secret, hash_data(signed))
    return signed


def verify(params: Mapping[str, str], secret: str) -> bool:
    given = params.get("vnp_SecureHash", "")
    expected = secure_hash(secret, hash_data(params))
    return hmac.compare_digest(expected, given.lower())


def encode(params: Mapping[str, str]) -> str:
    """A query string encoded the way the hash encodes values (sorted, space as +)."""
    hashed = sorted((k, v) for k, v in params.items() if k != "vnp_SecureHash" and v != "")
    if "vnp_SecureHash" in params:
        hashed.append(("vnp_SecureHash", params["vnp_SecureHash"]))
    return urlencode(hashed, quote_via=quote_plus)


def pay_params(
    *,
    tmn_code: str,
    amount: int,
    txn_ref: str,
    order_info: str,
    return_url: str,
    ip_addr: str,
    created_at: dt.datetime,
    expires_at: dt.datetime,
    locale: str = "vn",
    order_type: str = "other",
) -> dict[str, str]:
    """The params of a pay request, unsigned; vnp_Amount is in hundredths of a dong."""
    return {
        "vnp_Version": VERSION,
        "vnp_Command": "pay",
        "vnp_TmnCode": tmn_code,
        "vnp_Amount": str(amount * 100),
        "vnp_CreateDate": format_date(created_at),
        "vnp_CurrCode": "VND",
        "vnp_IpAddr": ip_addr,
        "vnp_Locale": locale,
        "vnp_OrderInfo": order_info,
        "vnp_OrderType": order_type,
        "vnp_ReturnUrl": return_url,
        "vnp_ExpireDate": format_date(expires_at),
        "vnp_TxnRef": txn_ref,
    }


def payment_url(base: str, params: Mapping[str, str], secret: str) -> str:
    return f"{base}?{encode(sign(params, secret))}"


def pipe_hash(secret: str, params: Mapping[str, str], fields: Iterable[str]) -> str:
    """The merchant web API's signature: the fields' values joined with |, in order."""
    return secure_hash(secret, "|".join(params.get(f, "") for f in fields))


def refund_request(
    *,
    secret: str,
    request_id: str,
    tmn_code: str,
    txn_ref: str,
    amount: int,
    transaction_no: str,
    transaction_date: dt.datetime,
    create_by: str,
    created_at: dt.datetime,
    ip_addr: str,
    order_info: str,
    transaction_type: str = "02",
) -> dict[str, str]:
    """A signed refund request; type 02 is a full refund, 03 a partial one."""
    body = {
        "vnp_RequestId": request_id,
        "vnp_Version": VERSION,
        "vnp_Command": "refund",
        "vnp_TmnCode": tmn_code,
        "vnp_TransactionType": transaction_type,
        "vnp_TxnRef": txn_ref,
        "vnp_Amount": str(amount * 100),
        "vnp_TransactionNo": transaction_no,
        "vnp_TransactionDate": format_date(transaction_date),
        "vnp_CreateBy": create_by,
        "vnp_CreateDate": format_date(created_at),
        "vnp_IpAddr": ip_addr,
        "vnp_OrderInfo": order_info,
    }
    body["vnp_SecureHash"] = pipe_hash(secret, body, REFUND_FIELDS)
    return body


# Present in every IPN and return, absent from a pay request; and the reverse.
RESULT_FIELDS = frozenset(
    {"vnp_ResponseCode", "vnp_TransactionStatus", "vnp_TransactionNo", "vnp_PayDate"}
)
PAY_ONLY_FIELDS = frozenset({"vnp_Command", "vnp_ReturnUrl", "vnp_IpAddr", "vnp_CreateDate"})


def is_success(params: Mapping[str, str]) -> bool:
    return params.get("vnp_ResponseCode") == "00" and params.get("vnp_TransactionStatus") == "00"


def amount_of(params: Mapping[str, str]) -> int | None:
    """vnp_Amount in dong, or None when it is not a whole number of dong."""
    raw = params.get("vnp_Amount", "")
    if not raw.isdigit() or int(raw) % 100:
        return None
    return int(raw) // 100


def result_of(params: Mapping[str, str]) -> Result:
    """A verified IPN or return URL as a Result."""
    code = params.get("vnp_ResponseCode", "")
    return Result(
        txn_ref=params.get("vnp_TxnRef", ""),
        amount=amount_of(params),
        transaction_no=params.get("vnp_TransactionNo", ""),
        success=is_success(params),
        code=code,
        message=RESPONSE_MESSAGES.get(code, "Failure"),
        params={k: v for k, v in params.items() if k != "vnp_SecureHash"},
    )


def ipn_answer(outcome: Outcome) -> dict[str, str]:
    code, message = IPN_ANSWERS[outcome]
    return {"RspCode": code, "Message": message}


class VnpayGateway:
    provider: Provider = "vnpay"

    def __init__(self, settings: PaymentSettings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http

    @property
    def _secret(self) -> str:
        return self.settings.vnpay_hash_secret.get_secret_value()

    async def create(self, checkout: Checkout) -> str:
        # Nothing to call: VNPay's pay page takes the signed request from the URL.
        params = pay_params(
            tmn_code=self.settings.vnpay_tmn_code,
            amount=checkout.amount,
            txn_ref=checkout.txn_ref,
            order_info=checkout.order_info,
            return_url=self.settings.return_url("vnpay"),
            ip_addr=checkout.client_ip,
            created_at=checkout.created_at,
            expires_at=checkout.expires_at,
        )
        return payment_url(self.settings.vnpay_pay_url, params, self._secret)

    def verify(self, params: Mapping[str, object]) -> Result | None:
        text = {k: v for k, v in params.items() if isinstance(v, str)}
        # The merchant's own pay request carries a valid signature too, and every browser sees
        # it: only what VNPay sends back (a result with its transaction) counts.
        if not text.keys() >= RESULT_FIELDS or PAY_ONLY_FIELDS & text.keys():
            return None
        if not verify(text, self._secret):
            return None
        return result_of(text)

    async def refund(self, refund: Refund) -> RefundOutcome:
        body = refund_request(
            secret=self._secret,
            request_id=uuid.uuid4().hex,
            tmn_code=self.settings.vnpay_tmn_code,
            txn_ref=refund.txn_ref,
            amount=refund.amount,
            transaction_no=refund.transaction_no,
            transaction_date=refund.created_at,
            create_by="bmt-payment",
            created_at=dt.datetime.now(dt.UTC),
            ip_addr=self.settings.server_ip,
            order_info=domain.refund_info(refund.payment_id, refund.txn_ref),
        )
        timeout = aiohttp.ClientTimeout(total=self.settings.gateway_timeout_seconds)
        try:
            async with self.http.post(
                self.settings.vnpay_api_url, json=body, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise GatewayError(f"VNPay answered the refund with HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise GatewayError(f"VNPay could not be asked for a refund: {exc!r}") from None
        if not isinstance(answer, dict):
            raise GatewayError("VNPay answered the refund with something else than an object")
        code = str(answer.get("vnp_ResponseCode", ""))
        if code == "00" and answer.get("vnp_TxnRef", refund.txn_ref) != refund.txn_ref:
            raise GatewayError("VNPay answered the refund of another transaction")
        return RefundOutcome(
            ok=code == "00",
            code=code,
            message=str(answer.get("vnp_Message") or API_MESSAGES.get(code, "Unknown")),
        )
