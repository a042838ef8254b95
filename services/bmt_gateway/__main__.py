"""`python -m bmt_gateway`: run the gateway."""

from bmt_common.runner import serve
from bmt_gateway.app import make_app
from bmt_gateway.settings import GatewaySettings

settings = GatewaySettings()
serve("gateway", settings, lambda: make_app(settings))
