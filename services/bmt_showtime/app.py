"""The showtime service's app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bmt_common.app import create_app
from bmt_common.auth import JwtVerifier
from bmt_common.db import postgres_ctx
from bmt_showtime.api import HTTP, SETTINGS, api
from bmt_showtime.settings import ShowtimeSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        app[HTTP] = session
        yield


def make_app(settings: ShowtimeSettings) -> web.Application:
    verifier = JwtVerifier(
        settings.jwks_url, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app = create_app("showtime", api, verifier=verifier, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(http_ctx)
    return app
