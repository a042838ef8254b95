"""The VNPay 2.1.0 side: checking a pay request, deciding it, the IPN, and the merchant web API
(refund, querydr)."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from bmt_sandbox import protocol
from bmt_sandbox.ledger import Ledger, Refused, VnpayTransaction

REQUIRED = (
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_Amount",
    "vnp_CreateDate",
    "vnp_CurrCode",
    "vnp_IpAddr",
    "vnp_Locale",
    "vnp_OrderInfo",
    "vnp_OrderType",
    "vnp_ReturnUrl",
    "vnp_TxnRef",
    "vnp_SecureHash",
)


@dataclass(frozen=True)
class Decision:
    provider: Literal["vnpay", "momo"]
    transaction_no: str
    return_url: str
    ipn_responses: list[dict[str, Any]]


def parse(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def check_pay_request(ledger: Ledger, params: dict[str, str], now: dt.datetime) -> None:
    """Raises Refused with the reason VNPay's pay page would give."""
    settings = ledger.settings
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise Refused(f"missing parameters: {', '.join(missing)}", "03")
    if not protocol.vnp_valid(settings.vnpay_hash_secret.get_secret_value(), params):
        raise Refused("invalid signature (vnp_SecureHash)", "97")
    if params["vnp_TmnCode"] != settings.vnpay_tmn_code:
        raise Refused(f"unknown merchant {params['vnp_TmnCode']!r}", "02")
    if params["vnp_Version"] != "2.1.0" or params["vnp_Command"] != "pay":
        raise Refused("only vnp_Version 2.1.0 and vnp_Command pay are served", "03")
    amount = params["vnp_Amount"]
    if not amount.isdigit() or int(amount) <= 0 or int(amount) % 100:
        raise Refused("vnp_Amount must be a positive amount times 100", "03")
    if params["vnp_CurrCode"] != "VND":
        raise Refused("vnp_CurrCode must be VND", "03")
    if params["vnp_Locale"] not in ("vn", "en"):
        raise Refused("vnp_Locale must be vn or en", "03")
    if protocol.vnp_parse_date(params["vnp_CreateDate"]) is None:
        raise Refused("vnp_CreateDate must be yyyyMMddHHmmss", "03")
    if not params["vnp_ReturnUrl"].startswith(("http://", "https://")):
        raise Refused("vnp_ReturnUrl must be an http(s) URL", "03")
    if params.get("vnp_ExpireDate"):
        expires = protocol.vnp_parse_date(params["vnp_ExpireDate"])
        if expires is None:
            raise Refused("vnp_ExpireDate must be yyyyMMddHHmmss", "03")
        if expires <= now:
            raise Refused("the payment has expired (vnp_ExpireDate is past)", "11")
    if params["vnp_TxnRef"] in ledger.vnpay:
        raise Refused(f"transaction {params['vnp_TxnRef']} already exists", "01")


def result_params(
    ledger: Ledger, request: dict[str, str], success: bool, now: dt.datetime
) -> dict[str, str]:
    """The signed result VNPay sends to the IPN and the return URL."""
    # A cancelled payment carries no transaction number (0), as VNPay's own does.
    number = str(ledger.next_number()) if success else "0"
    result = {
        "vnp_TmnCode": request["vnp_TmnCode"],
        "vnp_Amount": request["vnp_Amount"],
        "vnp_BankCode": request.get("vnp_BankCode") or "NCB",
        "vnp_BankTranNo": f"VNP{number}" if success else "",
        "vnp_CardType": "ATM",
        "vnp_OrderInfo": request["vnp_OrderInfo"],
        "vnp_PayDate": protocol.vnp_date(now),
        "vnp_ResponseCode": "00" if success else "24",
        "vnp_TransactionNo": number,
        "vnp_TransactionStatus": "00" if success else "02",
        "vnp_TxnRef": request["vnp_TxnRef"],
    }
    result = {k: v for k, v in result.items() if v}
    result["vnp_SecureHash"] = protocol.vnp_hash(
        ledger.settings.vnpay_hash_secret.get_secret_value(), result
    )
    return result


async def decide(
    ledger: Ledger, query: str, success: bool, copies: int = 1, parallel: bool = False
) -> Decision:
    """The customer paid or cancelled: remember it, send the IPN, give the return URL."""
    now = dt.datetime.now(dt.UTC)
    request = parse(query)
    check_pay_request(ledger, request, now)
    result = result_params(ledger, request, success, now)
    ledger.vnpay[request["vnp_TxnRef"]] = VnpayTransaction(
        txn_ref=request["vnp_TxnRef"],
        transaction_no=result["vnp_TransactionNo"],
        amount=int(request["vnp_Amount"]),
        order_info=request["vnp_OrderInfo"],
        create_date=request["vnp_CreateDate"],
        pay_date=result["vnp_PayDate"],
        response_code=result["vnp_ResponseCode"],
        transaction_status=result["vnp_TransactionStatus"],
    )
    signed = protocol.vnp_query(result)
    ipn_url = protocol.with_query(ledger.settings.vnpay_ipn_url, signed)
    responses = await ledger.deliver(lambda: ledger.get(ipn_url), copies, parallel)
    return Decision(
        "vnpay",
        result["vnp_TransactionNo"],
        protocol.with_query(request["vnp_ReturnUrl"], signed),
        responses,
    )


def made_up_result(ledger: Ledger, request: dict[str, str], success: bool) -> dict[str, str]:
    """The result a decision on this pay request would send, unsigned and not recorded."""
    missing = [
        f for f in ("vnp_TmnCode", "vnp_Amount", "vnp_OrderInfo", "vnp_TxnRef") if f not in request
    ]
    if missing:
        raise Refused(f"missing parameters: {', '.join(missing)}", "03")
    result = result_params(ledger, request, success, dt.datetime.now(dt.UTC))
    del result["vnp_SecureHash"]
    return result


def craft_ipn(ledger: Ledger, params: dict[str, str], tamper: str | None) -> str:
    """The IPN URL of crafted params: signed unless they bring a hash, then tampered with."""
    secret = ledger.settings.vnpay_hash_secret.get_secret_value()
    params = dict(params)
    if "vnp_SecureHash" not in params:
        params["vnp_SecureHash"] = protocol.vnp_hash(secret, params)
    if tamper == "signature":
        digest = params["vnp_SecureHash"]
        params["vnp_SecureHash"] = digest[:-1] + ("0" if digest[-1:] != "0" else "1")
    elif tamper == "amount":
        amount = params.get("vnp_Amount", "0")
        params["vnp_Amount"] = str((int(amount) if amount.isdigit() else 0) + 100_000)
    return protocol.vnp_query(params)


def _api_answer(ledger: Ledger, fields: dict[str, str]) -> dict[str, str]:
    answer = {"vnp_ResponseId": uuid.uuid4().hex, **fields}
    answer["vnp_SecureHash"] = protocol.vnp_pipe_hash(
        ledger.settings.vnpay_hash_secret.get_secret_value(),
        answer,
        protocol.VNP_API_RESPONSE_FIELDS,
    )
    return answer


def _api_error(ledger: Ledger, command: str, code: str, message: str) -> dict[str, str]:
    return _api_answer(
        ledger,
        {
            "vnp_Command": command,
            "vnp_ResponseCode": code,
            "vnp_Message": message,
            "vnp_TmnCode": ledger.settings.vnpay_tmn_code,
        },
    )


def merchant_api(ledger: Ledger, body: Any) -> dict[str, str]:
    """POST merchant_webapi/api/transaction: refund or querydr, answered with HTTP 200 always."""
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        return _api_error(ledger, "", "03", "Invalid data format: a JSON object of strings")
    command = body.get("vnp_Command", "")
    fields = {
        "refund": protocol.VNP_REFUND_FIELDS,
        "querydr": protocol.VNP_QUERYDR_FIELDS,
    }.get(command)
    if fields is None:
        return _api_error(ledger, command, "03", f"Unknown vnp_Command {command!r}")
    missing = [f for f in fields if f not in ("vnp_TransactionNo",) and not body.get(f)]
    if missing:
        return _api_error(ledger, command, "03", f"Missing {', '.join(missing)}")
    secret = ledger.settings.vnpay_hash_secret.get_secret_value()
    expected = protocol.vnp_pipe_hash(secret, body, fields)
    if not hmac.compare_digest(expected, str(body.get("vnp_SecureHash", "")).lower()):
        return _api_error(ledger, command, "97", "Invalid checksum")
    if body["vnp_TmnCode"] != ledger.settings.vnpay_tmn_code:
        return _api_error(ledger, command, "02", "Invalid merchant")
    if body["vnp_RequestId"] in ledger.refund_requests:
        return _api_error(ledger, command, "94", "Duplicate request")
    ledger.refund_requests.add(body["vnp_RequestId"])
    txn = ledger.vnpay.get(body["vnp_TxnRef"])
    if txn is None:
        return _api_error(ledger, command, "91", "Transaction not found")
    if command == "querydr":
        return _api_answer(ledger, {**_described(ledger, txn), "vnp_Command": "querydr"})
    return _refund(ledger, body, txn)


def _described(ledger: Ledger, txn: VnpayTransaction) -> dict[str, str]:
    return {
        "vnp_TmnCode": ledger.settings.vnpay_tmn_code,
        "vnp_ResponseCode": "00",
        "vnp_Message": "Success",
        "vnp_TxnRef": txn.txn_ref,
        "vnp_Amount": str(txn.amount),
        "vnp_BankCode": "NCB",
        "vnp_PayDate": txn.pay_date,
        "vnp_TransactionNo": txn.transaction_no,
        "vnp_TransactionType": "01",
        "vnp_TransactionStatus": txn.transaction_status,
        "vnp_OrderInfo": txn.order_info,
    }


def _refund(ledger: Ledger, body: dict[str, str], txn: VnpayTransaction) -> dict[str, str]:
    if body.get("vnp_TransactionNo") and body["vnp_TransactionNo"] != txn.transaction_no:
        return _api_error(ledger, "refund", "91", "Transaction not found")
    if txn.transaction_status != "00":
        return _api_error(ledger, "refund", "95", "Transaction not successful at VNPay")
    amount = body["vnp_Amount"]
    kind = body["vnp_TransactionType"]
    left = txn.amount - txn.refunded
    if not amount.isdigit() or not 0 < int(amount) <= left:
        return _api_error(ledger, "refund", "03", f"vnp_Amount must be at most {left}")
    if kind not in ("02", "03") or (kind == "02" and int(amount) != left):
        return _api_error(ledger, "refund", "03", "vnp_TransactionType 02 refunds all, 03 part")
    txn.refunded += int(amount)
    ledger.record_refund(
        provider="vnpay",
        txn_ref=txn.txn_ref,
        transaction_no=txn.transaction_no,
        amount=int(amount) // 100,
        request_id=body["vnp_RequestId"],
        reason=body["vnp_OrderInfo"],
    )
    return _api_answer(
        ledger,
        {
            **_described(ledger, txn),
            "vnp_Command": "refund",
            "vnp_Message": "Refund success",
            "vnp_Amount": amount,
            "vnp_TransactionType": kind,
        },
    )
