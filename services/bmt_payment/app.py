"""The payment service's app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bmt_common.app import create_app
from bmt_common.auth import JwtVerifier
from bmt_common.db import POOL, Connection, postgres_ctx
from bmt_common.events import OrderClosed, OrderConfirmationFailed, OrderCreated
from bmt_common.kafka import Consumer, consumer_ctx
from bmt_payment import flows
from bmt_payment import repository as repo
from bmt_payment.api import GATEWAYS, HTTP, REFUNDER, SETTINGS, api
from bmt_payment.gateway import Gateway
from bmt_payment.momo import MomoGateway
from bmt_payment.settings import PaymentSettings
from bmt_payment.vnpay import VnpayGateway

MIGRATIONS = Path(__file__).parent / "migrations"


def make_gateways(settings: PaymentSettings, http: aiohttp.ClientSession) -> dict[str, Gateway]:
    """One adapter per provider; a new provider is a new module and a line here."""
    return {"vnpay": VnpayGateway(settings, http), "momo": MomoGateway(settings, http)}


async def gateways_ctx(app: web.Application) -> AsyncIterator[None]:
    """The HTTP client for the order service and the gateways, the adapters, and the refunder
    with its periodic sweep of refunds still to be made."""
    settings = app[SETTINGS]
    async with aiohttp.ClientSession(raise_for_status=False) as http:
        app[HTTP] = http
        gateways = make_gateways(settings, http)
        app[GATEWAYS] = gateways
        refunder = flows.Refunder(app[POOL], gateways, settings.refund_retry_seconds)
        app[REFUNDER] = refunder
        sweep = asyncio.create_task(refunder.run(), name="refund-sweep")
        try:
            yield
        finally:
            sweep.cancel()
            await asyncio.gather(sweep, return_exceptions=True)
            await refunder.close()


def make_consumer(app: web.Application) -> Consumer:
    settings, refunder = app[SETTINGS], app[REFUNDER]

    async def on_order_created(conn: Connection, event: OrderCreated) -> None:
        await repo.insert_order(
            conn, event.order_id, event.user_id, event.total, "pending", event.expires_at
        )

    async def on_order_closed(conn: Connection, event: OrderClosed) -> None:
        await repo.close_order(conn, event.order_id, event.reason)

    async def on_confirmation_failed(conn: Connection, event: OrderConfirmationFailed) -> None:
        # The order could not take this payment: the money goes back.
        if await repo.request_refund(conn, event.payment_id, event.order_id, event.reason):
            refunder.soon(event.payment_id)

    return Consumer(
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        instance_id=settings.consumer_instance,
        topics=[settings.order_topic],
        pool=app[POOL],
        handlers={
            OrderCreated: on_order_created,
            OrderClosed: on_order_closed,
            OrderConfirmationFailed: on_confirmation_failed,
        },
    )


def make_app(settings: PaymentSettings) -> web.Application:
    verifier = JwtVerifier(
        settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app = create_app("payment", api, verifier=verifier, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(gateways_ctx)
    app.cleanup_ctx.append(consumer_ctx(make_consumer))
    return app
