"""The order service's app factory: routes, the two consumers and the hold sweeper."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bmt_common import outbox
from bmt_common.app import create_app
from bmt_common.auth import JwtVerifier
from bmt_common.db import POOL, postgres_ctx
from bmt_common.events import OrderClosed, PaymentSucceeded, ShowtimeCancelled, ShowtimeReleased
from bmt_common.kafka import Consumer, consumer_ctx
from bmt_order import consumers
from bmt_order import repository as repo
from bmt_order.api import CATALOGUE, SETTINGS, api
from bmt_order.catalogue import Catalogue
from bmt_order.settings import OrderSettings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def make_consumer(app: web.Application) -> Consumer:
    settings = app[SETTINGS]
    return Consumer(
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        instance_id=settings.consumer_instance,
        topics=[settings.showtime_topic, settings.payment_topic],
        pool=app[POOL],
        handlers={
            ShowtimeReleased: consumers.on_showtime_released,
            ShowtimeCancelled: consumers.on_showtime_cancelled,
            PaymentSucceeded: functools.partial(
                consumers.on_payment_succeeded,
                ticket_key=settings.ticket_key.get_secret_value(),
            ),
        },
    )


async def sweep_once(app: web.Application) -> list[int]:
    """Expire the pending orders whose hold ran out; their seats were free already."""
    async with app[POOL].acquire() as conn, conn.transaction():
        expired = await repo.expire_due(conn, batch=200)
        for order_id in expired:
            await outbox.add(conn, OrderClosed(order_id=order_id, reason="expired"))
    return expired


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                expired = await sweep_once(app)
                if expired:
                    log.info("expired %d orders", len(expired))
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
            await asyncio.sleep(app[SETTINGS].sweep_seconds)

    task = asyncio.create_task(loop(), name="hold-sweeper")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def catalogue_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        app[CATALOGUE] = Catalogue(http, app[SETTINGS].product_url)
        yield


def make_app(settings: OrderSettings) -> web.Application:
    if len(settings.ticket_key.get_secret_value()) < 16:
        raise SystemExit("BMT_TICKET_KEY must be set to at least 16 random characters")
    verifier = JwtVerifier(
        settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app = create_app("order", api, verifier=verifier, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(catalogue_ctx)
    app.cleanup_ctx.append(consumer_ctx(make_consumer))
    app.cleanup_ctx.append(sweeper)
    return app
