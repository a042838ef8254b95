"""Who calls: the bearer token verified, then its role checked against the route's (401, 403)."""

from __future__ import annotations

from aiohttp import web

from bmt_common.auth import Claims, JwtVerifier, TokenError
from bmt_common.problems import Problem

VERIFIER = web.AppKey("verifier", JwtVerifier)


async def authenticate(request: web.Request, needed: str) -> Claims:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(
            401,
            "This route needs a bearer access token",
            headers={"WWW-Authenticate": 'Bearer realm="bmt"'},
        )
    try:
        claims = await request.app[VERIFIER].verify(token.strip())
    except TokenError as exc:
        raise Problem(
            401,
            f"The access token is not valid: {exc}",
            headers={"WWW-Authenticate": 'Bearer realm="bmt", error="invalid_token"'},
        ) from None
    if needed != "user" and claims.role not in (needed, "admin"):
        raise Problem(403, f"This route needs the {needed} role")
    return claims
