"""The mail service: consumes the user and order outboxes and sends through SES, once per event."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from bmt_common import aws
from bmt_common.app import create_app
from bmt_common.db import POOL, Connection, postgres_ctx
from bmt_common.events import OrderConfirmed, OtpRequested, UserRegistered
from bmt_common.health import READY_CHECKS
from bmt_common.kafka import Consumer, consumer_ctx
from bmt_mail.mails import Mail, otp_mail, tickets_mail, welcome_mail
from bmt_mail.settings import MailSettings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SETTINGS = web.AppKey("settings", MailSettings)


async def send(settings: MailSettings, conn: Connection, mail: Mail) -> None:
    """Send through SES and log it in the caller's transaction (the event's)."""
    async with aws.client(settings, "ses") as ses:
        sent = await ses.send_email(
            Source=f"{settings.mail_sender_name} <{settings.mail_sender}>",
            Destination={"ToAddresses": [mail.recipient]},
            Message={
                "Subject": {"Data": mail.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": mail.text, "Charset": "UTF-8"},
                    "Html": {"Data": mail.html(), "Charset": "UTF-8"},
                },
            },
        )
    await conn.execute(
        "INSERT INTO sent_mails (recipient, template, ses_message_id) VALUES ($1, $2, $3)",
        mail.recipient,
        mail.template,
        sent["MessageId"],
    )
    log.info("sent %s mail", mail.template, extra={"ses_message_id": sent["MessageId"]})


def make_consumer(app: web.Application) -> Consumer:
    settings = app[SETTINGS]

    async def on_otp(conn: Connection, event: OtpRequested) -> None:
        await send(settings, conn, otp_mail(event))

    async def on_registered(conn: Connection, event: UserRegistered) -> None:
        await send(settings, conn, welcome_mail(event))

    async def on_confirmed(conn: Connection, event: OrderConfirmed) -> None:
        await send(settings, conn, tickets_mail(event))

    return Consumer(
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        instance_id=settings.consumer_instance,
        topics=[settings.user_topic, settings.order_topic],
        pool=app[POOL],
        handlers={
            OtpRequested: on_otp,
            UserRegistered: on_registered,
            OrderConfirmed: on_confirmed,
        },
    )


async def verified_sender(app: web.Application) -> AsyncIterator[None]:
    """Ready only while SES knows the sender as verified. The platform provisions the identity
    (the operator's Platform, or `bmt up`), so a lost one comes back without a restart here."""
    settings = app[SETTINGS]

    async def sender_verified() -> str | None:
        async with aws.client(settings, "ses") as ses:
            found = await ses.get_identity_verification_attributes(
                Identities=[settings.mail_sender]
            )
        status = found["VerificationAttributes"].get(settings.mail_sender, {})
        if status.get("VerificationStatus") != "Success":
            return f"sender {settings.mail_sender} not verified in SES"
        return None

    app[READY_CHECKS].append(sender_verified)
    yield


def make_app(settings: MailSettings) -> web.Application:
    app = create_app("mail", None, verifier=None, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(verified_sender)
    app.cleanup_ctx.append(consumer_ctx(make_consumer))
    return app
