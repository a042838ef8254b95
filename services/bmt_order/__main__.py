"""`python -m bmt_order`: run the order service."""

from bmt_common.runner import serve
from bmt_order.app import make_app
from bmt_order.settings import OrderSettings

settings = OrderSettings()
serve("order", settings, lambda: make_app(settings))
