"""The showtime service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from bmt_common.settings import ServiceSettings


class ShowtimeSettings(ServiceSettings):
    port: int = 18105
    # Films (and their durations) are read from the product service.
    product_url: str = "http://127.0.0.1:18103"
    cleaning_minutes: int = 15
