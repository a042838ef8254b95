"""`python -m bmt_product`: run the product service."""

from bmt_common.runner import serve
from bmt_product.app import make_app
from bmt_product.settings import ProductSettings

settings = ProductSettings()
serve("product", settings, lambda: make_app(settings))
