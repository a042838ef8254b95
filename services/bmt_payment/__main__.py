"""`python -m bmt_payment`: run the payment service."""

from bmt_common.runner import serve
from bmt_payment.app import make_app
from bmt_payment.settings import PaymentSettings

settings = PaymentSettings()
serve("payment", settings, lambda: make_app(settings))
