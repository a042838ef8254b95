"""The mail service's settings (environment variables `BMT_*`)."""

from __future__ import annotations

from bmt_common.events import outbox_topic
from bmt_common.settings import ServiceSettings


class MailSettings(ServiceSettings):
    port: int = 18102
    # SES sends only from a verified identity; the service verifies it at start-up.
    mail_sender: str = "no-reply@bmt.local"
    mail_sender_name: str = "BMT Cinemas"
    consumer_group: str = "bmt-mail"
    user_topic: str = outbox_topic("bmt_user")
    order_topic: str = outbox_topic("bmt_order")
