"""The product service's app factory."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bmt_common.app import create_app
from bmt_common.auth import JwtVerifier
from bmt_common.db import POOL, Connection, postgres_ctx
from bmt_common.events import MediaUploaded
from bmt_common.kafka import Consumer, consumer_ctx
from bmt_product import repository as repo
from bmt_product.api import SETTINGS, api
from bmt_product.settings import ProductSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def on_media_uploaded(conn: Connection, event: MediaUploaded) -> None:
    await repo.record_media(
        conn,
        key=event.key,
        owner=event.owner,
        owner_id=event.owner_id,
        slot=event.slot,
        url=event.url,
        size=event.size,
    )


def make_consumer(app: web.Application) -> Consumer:
    settings = app[SETTINGS]
    return Consumer(
        bootstrap=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        instance_id=settings.consumer_instance,
        topics=[settings.media_topic],
        pool=app[POOL],
        handlers={MediaUploaded: on_media_uploaded},
    )


def make_app(settings: ProductSettings) -> web.Application:
    verifier = JwtVerifier(
        settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app = create_app("product", api, verifier=verifier, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(consumer_ctx(make_consumer))
    return app
