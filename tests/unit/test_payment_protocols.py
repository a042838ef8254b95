"""The payment gateways' protocols (VNPay 2.1.0, MoMo v2), checked without a network: signatures
are recomputed here from the specification's words, not from the code under test."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

import aiohttp
import pytest

from bmt_payment import domain, momo, vnpay
from bmt_payment.domain import Outcome
from bmt_payment.gateway import Checkout
from bmt_payment.settings import PaymentSettings
from bmt_sandbox import protocol as sandbox

SECRET = "test-vnpay-secret"
MOMO_SECRET = "test-momo-secret"
ACCESS_KEY = "test-access"
CREATED = dt.datetime(2024, 1, 1, 17, 30, 5, tzinfo=dt.UTC)  # 2024-01-02 00:30:05 in GMT+7


def _pay_params(amount: int = 90_000) -> dict[str, str]:
    return vnpay.pay_params(
        tmn_code="BMTLOCAL",
        amount=amount,
        txn_ref="BMT42A1B2C3",
        order_info="Thanh toan ve xem phim don hang 42",
        return_url="http://127.0.0.1:18080/v1/payments/vnpay/return",
        ip_addr="203.0.113.7",
        created_at=CREATED,
        expires_at=CREATED + dt.timedelta(minutes=15),
    )


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _independent_vnpay_hash(secret: str, params: dict[str, str]) -> str:
    """The specification, step by step: non-empty vnp_* params without the hash fields,
    sorted by key, key=quote_plus(value) joined by &, hex HMAC-SHA512."""
    kept = {
        k: v
        for k, v in params.items()
        if k.startswith("vnp_") and k not in ("vnp_SecureHash", "vnp_SecureHashType") and v
    }
    data = "&".join(f"{k}={quote_plus(kept[k])}" for k in sorted(kept))
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


# VNPay
def test_a_vnpay_payment_url_verifies_after_the_round_trip() -> None:
    url = vnpay.payment_url("https://pay.example/vpcpay.html", _pay_params(), SECRET)
    params = _query(url)
    assert url.startswith("https://pay.example/vpcpay.html?")
    assert list(params)[-1] == "vnp_SecureHash"
    assert vnpay.verify(params, SECRET)
    assert not vnpay.verify(params, "another-secret")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("vnp_Amount", "100"),
        ("vnp_TxnRef", "BMT43A1B2C3"),
        ("vnp_ReturnUrl", "https://evil.example/return"),
        ("vnp_OrderInfo", "Thanh toan ve xem phim don hang 43"),
        ("vnp_BankCode", "NCB"),  # a parameter added after signing
    ],
)
def test_a_changed_or_added_vnpay_param_fails_verification(name: str, value: str) -> None:
    params = _query(vnpay.payment_url("https://pay.example/p", _pay_params(), SECRET))
    params[name] = value
    assert not vnpay.verify(params, SECRET)


def test_a_vnpay_result_without_its_hash_fails_verification() -> None:
    params = _query(vnpay.payment_url("https://pay.example/p", _pay_params(), SECRET))
    del params["vnp_SecureHash"]
    assert not vnpay.verify(params, SECRET)


def test_vnpay_hash_known_answer() -> None:
    params = {
        "vnp_Version": "2.1.0",
        "vnp_Command": "pay",
        "vnp_TmnCode": "DEMOV210",
        "vnp_Amount": "1806000",
        "vnp_CreateDate": "20210801153333",
        "vnp_CurrCode": "VND",
        "vnp_IpAddr": "127.0.0.1",
        "vnp_Locale": "vn",
        "vnp_OrderInfo": "Thanh toan don hang :5 & more/ok",
        "vnp_OrderType": "other",
        "vnp_ReturnUrl": "https://domainmerchant.vn/ReturnUrl?a=b",
        "vnp_TxnRef": "5",
        "vnp_BankCode": "",  # empty: left out of the hash
    }
    expected = _independent_vnpay_hash(SECRET, params)
    assert vnpay.sign(params, SECRET)["vnp_SecureHash"] == expected
    assert _query(vnpay.payment_url("https://p", params, SECRET))["vnp_SecureHash"] == expected
    # The signed string itself, as the documentation's example shows it encoded.
    assert vnpay.hash_data(params).startswith(
        "vnp_Amount=1806000&vnp_Command=pay&vnp_CreateDate=20210801153333&vnp_CurrCode=VND"
    )
    assert "vnp_OrderInfo=Thanh+toan+don+hang+%3A5+%26+more%2Fok&" in vnpay.hash_data(params)
    assert "vnp_ReturnUrl=https%3A%2F%2Fdomainmerchant.vn%2FReturnUrl%3Fa%3Db&" in (
        vnpay.hash_data(params)
    )


def test_vnpay_verification_ignores_the_hash_type_and_non_vnp_params() -> None:
    params = vnpay.sign({"vnp_TxnRef": "BMT1", "vnp_Amount": "100000"}, SECRET)
    params["vnp_SecureHashType"] = "HmacSHA512"
    params["utm_source"] = "mail"
    assert vnpay.verify(params, SECRET)
    assert vnpay.verify({**params, "vnp_SecureHash": params["vnp_SecureHash"].upper()}, SECRET)


def test_vnpay_amount_is_in_hundredths_of_a_dong() -> None:
    assert _pay_params(90_000)["vnp_Amount"] == "9000000"
    assert vnpay.amount_of({"vnp_Amount": "9000000"}) == 90_000
    assert vnpay.amount_of({"vnp_Amount": "9000050"}) is None
    assert vnpay.amount_of({"vnp_Amount": "-100"}) is None


def test_vnpay_dates_are_gmt_plus_7() -> None:
    params = _pay_params()
    assert params["vnp_CreateDate"] == "20240102003005"
    assert params["vnp_ExpireDate"] == "20240102004505"
    assert vnpay.format_date(dt.datetime(2024, 1, 2, 0, 30, 5, tzinfo=vnpay.GMT7)) == (
        "20240102003005"
    )
    assert vnpay.parse_date("20240102003005") == CREATED
    with pytest.raises(ValueError, match="aware"):
        vnpay.format_date(dt.datetime(2024, 1, 1))  # naive: refused


def test_vnpay_pay_request_has_every_required_param() -> None:
    params = _pay_params()
    assert params["vnp_Version"] == "2.1.0"
    assert params["vnp_Command"] == "pay"
    assert params["vnp_CurrCode"] == "VND"
    assert params["vnp_Locale"] == "vn"
    assert params["vnp_OrderType"] == "other"
    assert "vnp_SecureHashType" not in params


@pytest.mark.parametrize(
    ("response_code", "status", "success"),
    [("00", "00", True), ("00", "02", False), ("24", "02", False), ("24", "00", False)],
)
def test_a_vnpay_payment_succeeds_only_when_both_codes_are_00(
    response_code: str, status: str, success: bool
) -> None:
    result = vnpay.result_of(
        {
            "vnp_ResponseCode": response_code,
            "vnp_TransactionStatus": status,
            "vnp_TxnRef": "BMT1",
            "vnp_Amount": "100000",
            "vnp_TransactionNo": "14226112",
        }
    )
    assert result.success is success
    assert (result.txn_ref, result.amount, result.transaction_no) == ("BMT1", 1000, "14226112")


@pytest.mark.parametrize(
    ("outcome", "code", "message"),
    [
        (Outcome.APPLIED, "00", "Confirm Success"),
        (Outcome.NOT_FOUND, "01", "Order not found"),
        (Outcome.ALREADY_APPLIED, "02", "Order already confirmed"),
        (Outcome.WRONG_AMOUNT, "04", "Invalid amount"),
        (Outcome.BAD_SIGNATURE, "97", "Invalid signature"),
        (Outcome.ERROR, "99", "Unknown error"),
    ],
)
def test_the_ipn_rspcode_mapping(outcome: Outcome, code: str, message: str) -> None:
    assert vnpay.ipn_answer(outcome) == {"RspCode": code, "Message": message}


def test_every_outcome_has_an_answer_in_both_protocols() -> None:
    assert set(vnpay.IPN_ANSWERS) == set(Outcome)
    assert set(momo.IPN_STATUSES) == set(Outcome)
    assert momo.ipn_status(Outcome.APPLIED) == momo.ipn_status(Outcome.ALREADY_APPLIED) == 204
    assert momo.ipn_status(Outcome.BAD_SIGNATURE) == 400


def test_vnpay_refund_hash_known_answer() -> None:
    body = vnpay.refund_request(
        secret=SECRET,
        request_id="req1",
        tmn_code="BMTLOCAL",
        txn_ref="BMT5",
        amount=60_000,
        transaction_no="14226112",
        transaction_date=CREATED,
        create_by="bmt-payment",
        created_at=CREATED + dt.timedelta(hours=1),
        ip_addr="127.0.0.1",
        order_info="Hoan tien BMT5",
    )
    data = (
        "req1|2.1.0|refund|BMTLOCAL|02|BMT5|6000000|14226112|20240102003005|bmt-payment"
        "|20240102013005|127.0.0.1|Hoan tien BMT5"
    )
    expected = hmac.new(SECRET.encode(), data.encode(), hashlib.sha512).hexdigest()
    assert body["vnp_SecureHash"] == expected
    assert body["vnp_Command"] == "refund"
    assert body["vnp_TransactionType"] == "02"


def test_the_sandbox_and_the_payment_service_agree_on_vnpay() -> None:
    """Two implementations written apart: each verifies what the other signs."""
    url = vnpay.payment_url("http://sandbox/p", _pay_params(), SECRET)
    assert sandbox.vnp_valid(SECRET, _query(url))
    result = {
        "vnp_TmnCode": "BMTLOCAL",
        "vnp_Amount": "9000000",
        "vnp_OrderInfo": "Thanh toan ve xem phim don hang 42",
        "vnp_ResponseCode": "00",
        "vnp_TransactionStatus": "00",
        "vnp_TransactionNo": "14226112",
        "vnp_TxnRef": "BMT42A1B2C3",
        "vnp_PayDate": "20240102003105",
    }
    result["vnp_SecureHash"] = sandbox.vnp_hash(SECRET, result)
    assert vnpay.verify(_query("http://x/?" + sandbox.vnp_query(result)), SECRET)


async def test_the_vnpay_adapter_signs_its_url_and_never_takes_it_for_a_result() -> None:
    settings = PaymentSettings()
    checkout = Checkout(
        payment_id=42,
        order_id=7,
        txn_ref="BMT42A1B2C3",
        amount=90_000,
        created_at=CREATED,
        expires_at=CREATED + dt.timedelta(minutes=15),
        client_ip="203.0.113.7",
        order_info=domain.order_info(7),
    )
    async with aiohttp.ClientSession() as http:  # never used: VNPay's create is a URL
        gateway = vnpay.VnpayGateway(settings, http)
        url = await gateway.create(checkout)
        params = _query(url)
        # Signed with the merchant's secret and seen by every browser: not a gateway result.
        replayed = gateway.verify(params)
    assert url.startswith(settings.vnpay_pay_url + "?")
    assert params["vnp_TmnCode"] == settings.vnpay_tmn_code
    assert params["vnp_ReturnUrl"] == "http://127.0.0.1:18080/v1/payments/vnpay/return"
    assert params["vnp_IpAddr"] == "203.0.113.7"
    assert vnpay.verify(params, settings.vnpay_hash_secret.get_secret_value())
    assert replayed is None


# MoMo
def _independent_momo_signature(secret: str, raw: str) -> str:
    return hmac.new(secret.encode(), raw.encode(), hashlib.sha256).hexdigest()


def test_momo_create_signature_known_answer_and_tamper() -> None:
    body = momo.create_request(
        partner_code="BMTLOCAL",
        access_key=ACCESS_KEY,
        secret=MOMO_SECRET,
        request_id="req-1",
        order_id="BMT42A1B2C3",
        amount=90_000,
        order_info="Thanh toan ve xem phim don hang 42",
        redirect_url="http://127.0.0.1:18080/v1/payments/momo/return",
        ipn_url="http://127.0.0.1:18080/v1/payments/momo/ipn",
        extra="",
    )
    raw = (
        f"accessKey={ACCESS_KEY}&amount=90000&extraData=&ipnUrl="
        "http://127.0.0.1:18080/v1/payments/momo/ipn&orderId=BMT42A1B2C3"
        "&orderInfo=Thanh toan ve xem phim don hang 42&partnerCode=BMTLOCAL"
        "&redirectUrl=http://127.0.0.1:18080/v1/payments/momo/return&requestId=req-1"
        "&requestType=captureWallet"
    )
    assert body["signature"] == _independent_momo_signature(MOMO_SECRET, raw)
    assert body["requestType"] == "captureWallet"
    # The sandbox accepts it; a changed amount it does not.
    assert sandbox.momo_valid(MOMO_SECRET, ACCESS_KEY, sandbox.MOMO_CREATE_FIELDS, body)
    assert not sandbox.momo_valid(
        MOMO_SECRET, ACCESS_KEY, sandbox.MOMO_CREATE_FIELDS, {**body, "amount": 1_000}
    )


def _momo_ipn() -> dict[str, Any]:
    ipn: dict[str, Any] = {
        "partnerCode": "BMTLOCAL",
        "orderId": "BMT42A1B2C3",
        "requestId": "req-1",
        "amount": 90_000,
        "orderInfo": "Thanh toan ve xem phim don hang 42",
        "orderType": "momo_wallet",
        "transId": 4088878653,
        "resultCode": 0,
        "message": "Thành công.",
        "payType": "qr",
        "responseTime": 1721720663942,
        "extraData": "",
    }
    ipn["signature"] = momo.sign_result(ipn, ACCESS_KEY, MOMO_SECRET)
    return ipn


def test_momo_ipn_signature_known_answer() -> None:
    raw = (
        f"accessKey={ACCESS_KEY}&amount=90000&extraData=&message=Thành công.&orderId=BMT42A1B2C3"
        "&orderInfo=Thanh toan ve xem phim don hang 42&orderType=momo_wallet"
        "&partnerCode=BMTLOCAL&payType=qr&requestId=req-1&responseTime=1721720663942"
        "&resultCode=0&transId=4088878653"
    )
    assert _momo_ipn()["signature"] == _independent_momo_signature(MOMO_SECRET, raw)


def test_a_momo_ipn_round_trips_as_json_and_as_a_redirect_query() -> None:
    ipn = _momo_ipn()
    assert momo.verify_result(ipn, ACCESS_KEY, MOMO_SECRET)
    # The redirect carries the same fields as strings.
    assert momo.verify_result({k: str(v) for k, v in ipn.items()}, ACCESS_KEY, MOMO_SECRET)
    result = momo.result_of(ipn)
    assert (result.success, result.amount, result.transaction_no) == (True, 90_000, "4088878653")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("amount", 1_000),
        ("resultCode", 1006),
        ("orderId", "BMT43"),
        ("transId", 1),
        ("extraData", "e30="),
    ],
)
def test_a_tampered_momo_ipn_fails(name: str, value: object) -> None:
    ipn = _momo_ipn()
    ipn[name] = value
    assert not momo.verify_result(ipn, ACCESS_KEY, MOMO_SECRET)


def test_a_momo_ipn_signed_with_another_key_fails() -> None:
    assert not momo.verify_result(_momo_ipn(), ACCESS_KEY, "another-secret")
    assert not momo.verify_result(_momo_ipn(), "another-access", MOMO_SECRET)


def test_momo_failure_results_are_not_successes() -> None:
    assert not momo.result_of({**_momo_ipn(), "resultCode": 1006}).success
    assert momo.result_of({**_momo_ipn(), "amount": "12.5"}).amount is None


def test_momo_refund_signature_known_answer() -> None:
    body = momo.refund_request(
        partner_code="BMTLOCAL",
        access_key=ACCESS_KEY,
        secret=MOMO_SECRET,
        request_id="req-2",
        order_id="BMT42A1B2C3-R1",
        amount=90_000,
        trans_id=4088878653,
        description="Hoan tien BMT42A1B2C3",
    )
    raw = (
        f"accessKey={ACCESS_KEY}&amount=90000&description=Hoan tien BMT42A1B2C3"
        "&orderId=BMT42A1B2C3-R1&partnerCode=BMTLOCAL&requestId=req-2&transId=4088878653"
    )
    assert body["signature"] == _independent_momo_signature(MOMO_SECRET, raw)


def test_momo_extra_data_is_base64_json() -> None:
    encoded = momo.extra_data({"order_id": 7, "payment_id": 42})
    assert json.loads(base64.b64decode(encoded)) == {"order_id": 7, "payment_id": 42}


# The rules around them
def test_a_cancelled_vnpay_payment_is_keyed_by_its_reference() -> None:
    assert domain.callback_key("0", "BMT1X") == "BMT1X:none"
    assert domain.callback_key("", "BMT1X") == "BMT1X:none"
    assert domain.callback_key("14226112", "BMT1X") == "14226112"


def test_money_is_late_when_the_order_cannot_take_it() -> None:
    now = CREATED
    later = now + dt.timedelta(minutes=1)
    assert domain.late_reason("pending", later, now, paid_before=False) is None
    assert domain.late_reason("expired", later, now, paid_before=False)
    assert domain.late_reason("cancelled", later, now, paid_before=False)
    assert domain.late_reason("pending", now - dt.timedelta(seconds=1), now, paid_before=False)
    assert domain.late_reason("pending", later, now, paid_before=True)


def test_only_a_pending_unexpired_order_can_be_paid() -> None:
    order = domain.OrderView(
        id=7, user_id=1, status="pending", total=90_000, expires_at=CREATED + dt.timedelta(1)
    )
    assert domain.unpayable(order, CREATED) is None
    assert domain.unpayable(order.model_copy(update={"status": "confirmed"}), CREATED) == (
        "Order 7 is confirmed; only a pending order can be paid"
    )
    expired = domain.unpayable(order, CREATED + dt.timedelta(days=2))
    assert expired is not None
    assert expired.startswith("Order 7 expired at ")


def test_the_pay_page_never_outlives_the_order() -> None:
    soon = CREATED + dt.timedelta(minutes=3)
    assert domain.pay_window_end(CREATED, soon, 15) == soon
    assert domain.pay_window_end(CREATED, CREATED + dt.timedelta(hours=1), 15) == (
        CREATED + dt.timedelta(minutes=15)
    )
