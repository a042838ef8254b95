"""The sandbox gateway's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import SecretStr

from bmt_common.settings import ServiceSettings


class SandboxSettings(ServiceSettings):
    port: int = 18109
    # Where browsers reach the sandbox's own pages (MoMo's payUrl points here).
    public_url: str = "http://127.0.0.1:18109"
    # The one merchant the sandbox knows: the same credentials as the payment service.
    vnpay_tmn_code: str = "BMTLOCAL"
    vnpay_hash_secret: SecretStr = SecretStr("bmt-local-vnpay-secret")
    momo_partner_code: str = "BMTLOCAL"
    momo_access_key: str = "bmt-local-access"
    momo_secret_key: SecretStr = SecretStr("bmt-local-momo-secret")
    # VNPay keeps the IPN URL per merchant (registered once), not per request.
    vnpay_ipn_url: str = "http://127.0.0.1:18080/v1/payments/vnpay/ipn"
    # Only for crafted MoMo IPNs (POST /sandbox/ipn/momo); real ones go to the create's ipnUrl.
    momo_ipn_url: str = "http://127.0.0.1:18080/v1/payments/momo/ipn"
    ipn_timeout_seconds: float = 15.0
