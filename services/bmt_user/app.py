"""The user service's app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from bmt_common.app import create_app
from bmt_common.auth import JwtVerifier
from bmt_common.db import POOL, postgres_ctx
from bmt_user import domain, passwords
from bmt_user import repository as repo
from bmt_user.api import SETTINGS, SIGNING_KEY, api
from bmt_user.passwords import PASSWORDS
from bmt_user.settings import UserSettings

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def make_app(settings: UserSettings) -> web.Application:
    if not settings.jwt_private_key.get_secret_value():
        raise SystemExit("BMT_JWT_PRIVATE_KEY (an Ed25519 private key in PEM) is not set")
    if len(settings.otp_pepper.get_secret_value()) < 16:
        raise SystemExit("BMT_OTP_PEPPER must be set to at least 16 random characters")
    key = domain.SigningKey.from_pem(settings.jwt_private_key.get_secret_value())
    # The service checks its own tokens with its own key: no JWKS round trip to itself.
    verifier = JwtVerifier(
        None,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        keys={key.kid: key.public_key()},
    )
    app = create_app("user", api, verifier=verifier, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[SIGNING_KEY] = key
    passwords.install(app, settings.password_hash_workers)
    app.cleanup_ctx.append(
        postgres_ctx(settings.database_url.get_secret_value(), MIGRATIONS, settings.db_pool_size)
    )
    app.cleanup_ctx.append(bootstrap_admin)
    return app


async def bootstrap_admin(app: web.Application) -> AsyncIterator[None]:
    """Creates the first admin from the settings when no admin exists yet."""
    settings = app[SETTINGS]
    if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
        email = settings.bootstrap_admin_email.strip().lower()
        password_hash = await app[PASSWORDS].hash(
            settings.bootstrap_admin_password.get_secret_value()
        )
        async with app[POOL].acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('bootstrap-admin'))")
            if not await repo.admin_exists(conn):
                await repo.create_user(
                    conn,
                    email=email,
                    password_hash=password_hash,
                    role="admin",
                    name="Administrator",
                    birthday=None,
                    sex=None,
                )
                log.info("created the first admin", extra={"email": email})
    yield
