"""The order service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from pydantic import SecretStr

from bmt_common.events import outbox_topic
from bmt_common.settings import ServiceSettings


class OrderSettings(ServiceSettings):
    port: int = 18106
    db_pool_size: int = 20
    # FAB names and prices are read from the product service at booking time.
    product_url: str = "http://127.0.0.1:18103"
    hold_minutes: int = 10
    sweep_seconds: float = 5.0
    max_seats: int = 10
    # Signs ticket codes: a code cannot be made up without it.
    ticket_key: SecretStr = SecretStr("")
    consumer_group: str = "bmt-order"
    showtime_topic: str = outbox_topic("bmt_showtime")
    payment_topic: str = outbox_topic("bmt_payment")
