"""The payment service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import SecretStr

from bmt_common.events import outbox_topic
from bmt_common.settings import ServiceSettings


class PaymentSettings(ServiceSettings):
    port: int = 18107
    order_url: str = "http://127.0.0.1:18106"
    # The public base URL (the gateway): the IPN and return URLs the gateways call are built on it.
    public_url: str = "http://127.0.0.1:18080"
    vnpay_pay_url: str = "http://127.0.0.1:18109/vnpay/paymentv2/vpcpay.html"
    vnpay_api_url: str = "http://127.0.0.1:18109/vnpay/merchant_webapi/api/transaction"
    vnpay_tmn_code: str = "BMTLOCAL"
    vnpay_hash_secret: SecretStr = SecretStr("bmt-local-vnpay-secret")
    momo_create_url: str = "http://127.0.0.1:18109/momo/v2/gateway/api/create"
    momo_refund_url: str = "http://127.0.0.1:18109/momo/v2/gateway/api/refund"
    momo_partner_code: str = "BMTLOCAL"
    momo_access_key: str = "bmt-local-access"
    momo_secret_key: SecretStr = SecretStr("bmt-local-momo-secret")
    consumer_group: str = "bmt-payment"
    order_topic: str = outbox_topic("bmt_order")
    # The longest a gateway's pay page stays open (never past the order's own expiry).
    payment_minutes: int = 15
    # The merchant server's address, sent as vnp_IpAddr of refund requests.
    server_ip: str = "127.0.0.1"
    # A refund that failed (or was interrupted) is tried again after this long.
    refund_retry_seconds: float = 60.0
    # MoMo asks clients to wait at least 30 s for its API.
    gateway_timeout_seconds: float = 30.0
    order_timeout_seconds: float = 10.0

    def ipn_url(self, provider: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/payments/{provider}/ipn"

    def return_url(self, provider: str) -> str:
        return f"{self.public_url.rstrip('/')}/v1/payments/{provider}/return"
