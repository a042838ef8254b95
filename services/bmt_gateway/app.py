"""The gateway: routes to the services by their OpenAPI documents, checks tokens and roles,
limits each client's rate, adds request ids, and serves the documents at /docs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from pathlib import Path

import aiohttp
from aiohttp import web

from bmt_common import logs
from bmt_common.app import background, create_app
from bmt_common.auth import JwtVerifier
from bmt_common.bearer import authenticate
from bmt_common.health import READY_CHECKS
from bmt_common.problems import Problem
from bmt_gateway.ratelimit import RateLimiter, retry_after
from bmt_gateway.revocations import RevokedSessions
from bmt_gateway.routes import Table
from bmt_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", GatewaySettings)
TABLE = web.AppKey("table", Table)
HTTP = web.AppKey("http", aiohttp.ClientSession)
REVOKED = web.AppKey("revoked", RevokedSessions)
LIMITS = web.AppKey("limits", RateLimiter)
REFRESH: web.AppKey[Callable[[], Awaitable[bool]]] = web.AppKey("refresh")
MISS_REFRESH_SECONDS = 2.0  # an unknown path refreshes the routes at most this often
BUFFERED_BYTES = 256 * 1024  # answers up to this size are relayed whole, larger ones streamed
AUTH_LIMITS = web.AppKey("auth_limits", RateLimiter)

# Per connection, never forwarded (RFC 9110 7.6.1), plus what the gateway sets itself.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
}
# Swagger UI 5 (OpenAPI 3.1), shipped as files inside the swagger-ui-py package.
SWAGGER_STATIC = Path(str(resources.files("swagger_ui") / "static"))


def client_of(request: web.Request, settings: GatewaySettings) -> str:
    forwarded = request.headers.get("X-Forwarded-For", "")
    if settings.trust_forwarded_for and forwarded:
        return forwarded.split(",")[0].strip()
    return request.remote or "unknown"


def _limit(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.take(key)
    if wait:
        raise Problem(
            429,
            f"Too many requests {what}; retry in {retry_after(wait)} s",
            headers={"Retry-After": retry_after(wait)},
        )


async def proxy(request: web.Request) -> web.StreamResponse:
    settings, table = request.app[SETTINGS], request.app[TABLE]
    route, allowed = table.match(request.method, request.path)
    if route is None and await request.app[REFRESH]():
        # A service may have gained the route since the last refresh: look once more.
        route, allowed = table.match(request.method, request.path)
    if route is None:
        if allowed:
            raise Problem(
                405,
                f"{request.method} is not allowed on {request.path}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise Problem(404, f"No route matches {request.path}")
    client = client_of(request, settings)
    _limit(request.app[LIMITS], client, "from this client")
    if route.template.startswith("/v1/auth/"):
        _limit(request.app[AUTH_LIMITS], f"{client} {route.template}", "to this route")
    if route.auth is not None:
        await authenticate(request, route.auth)

    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
    forwarded = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = (
        f"{forwarded}, {request.remote}"
        if forwarded and settings.trust_forwarded_for
        else str(request.remote)
    )
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    rid = logs.request_id.get() or ""
    headers["X-Request-Id"] = rid
    url = settings.upstreams[route.service] + request.rel_url.path_qs
    try:
        async with request.app[HTTP].request(
            request.method,
            url,
            headers=headers,
            data=request.content if request.body_exists else None,
            allow_redirects=False,
        ) as upstream:
            relayed = [(k, v) for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP]
            length = upstream.content_length
            if length is not None and length <= BUFFERED_BYTES:
                # Small answers (nearly all of them) go back in one piece: fewer writes.
                small = web.Response(
                    status=upstream.status, reason=upstream.reason, body=await upstream.read()
                )
                small.headers.extend(relayed)
                small.headers["X-Request-Id"] = rid
                return small
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            response.headers.extend(relayed)
            response.headers["X-Request-Id"] = rid
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await response.write(chunk)
            await response.write_eof()
            return response
    except TimeoutError:
        raise Problem(504, f"The {route.service} service did not answer in time") from None
    except aiohttp.ClientConnectionError:
        if request.content.exception() is not None:
            # The client's own body broke off (a 400 nobody reads, but not the service's fault).
            raise Problem(400, "The body ended before its declared length", close=True) from None
        raise Problem(502, f"The {route.service} service is unavailable") from None


async def load_routes(app: web.Application) -> AsyncIterator[None]:
    """Fetches every service's OpenAPI document; again now and then, so new routes appear."""
    settings, table, http = app[SETTINGS], app[TABLE], app[HTTP]

    async def fetch_all() -> None:
        for service, base in settings.upstreams.items():
            try:
                async with http.get(
                    f"{base}/openapi.json", timeout=aiohttp.ClientTimeout(total=3)
                ) as response:
                    response.raise_for_status()
                    table.update(service, await response.json())
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("no OpenAPI document from %s yet: %s", service, exc)

    last_fetch = [0.0]

    async def refresh_on_miss() -> bool:
        """Refresh now unless that was done very recently; True if it fetched."""
        if time.monotonic() - last_fetch[0] < MISS_REFRESH_SECONDS:
            return False
        last_fetch[0] = time.monotonic()
        await fetch_all()
        return True

    app[REFRESH] = refresh_on_miss

    async def loop() -> None:
        while True:
            last_fetch[0] = time.monotonic()
            await fetch_all()
            complete = set(table.documents) == set(settings.upstreams)
            await asyncio.sleep(settings.routes_refresh_seconds if complete else 1.0)

    async def routes_loaded() -> str | None:
        missing = sorted(set(settings.upstreams) - set(table.documents))
        return f"no routes yet from {', '.join(missing)}" if missing else None

    app[READY_CHECKS].append(routes_loaded)
    task = asyncio.create_task(loop(), name="route-loader")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[SETTINGS].upstream_timeout_seconds)
    connector = aiohttp.TCPConnector(limit=200, limit_per_host=100)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, auto_decompress=False
    ) as session:
        app[HTTP] = session
        yield


DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>BMT API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle({
  urls: URLS, dom_id: "#ui", deepLinking: true, layout: "StandaloneLayout",
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset]
});
</script></body></html>
"""


async def docs(request: web.Request) -> web.Response:
    urls = [
        {"name": f"{name} service", "url": f"/docs/openapi/{name}.json"}
        for name in sorted(request.app[TABLE].documents)
    ]
    return web.Response(text=DOCS_PAGE.replace("URLS", json.dumps(urls)), content_type="text/html")


async def service_document(request: web.Request) -> web.Response:
    name = request.match_info["service"]
    document = request.app[TABLE].documents.get(name)
    if document is None:
        raise Problem(404, f"No OpenAPI document for a service named {name!r}")
    # "Try it out" goes through the gateway, like any client.
    return web.json_response({**document, "servers": [{"url": "/"}]})


async def revocations_ctx(app: web.Application) -> AsyncIterator[None]:
    revoked, settings = app[REVOKED], app[SETTINGS]
    # Not ready before they are read: until then a token of an ended session would pass.
    async with background(
        app,
        revoked.follow(settings.kafka_bootstrap, settings.user_topic),
        "the reader of ended sessions",
        lambda: None if revoked.caught_up else "the ended sessions are not read yet",
    ):
        yield


def make_app(settings: GatewaySettings) -> web.Application:
    revoked = RevokedSessions(settings.revoked_sessions_seconds)
    verifier = JwtVerifier(
        settings.jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revoked=revoked,
    )
    # Bodies are relayed as sent: the service decodes them (and caps what they decode to).
    app = create_app(
        "gateway",
        None,
        verifier=verifier,
        max_body_bytes=settings.max_body_bytes,
        decompress=False,
    )
    app[SETTINGS] = settings
    app[REVOKED] = revoked
    app[TABLE] = Table()
    app[LIMITS] = RateLimiter(settings.rate_per_second, settings.rate_burst)
    app[AUTH_LIMITS] = RateLimiter(settings.auth_rate_per_minute / 60, settings.auth_burst)
    app.cleanup_ctx.append(http_ctx)
    app.cleanup_ctx.append(load_routes)
    app.cleanup_ctx.append(revocations_ctx)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/openapi/{service}.json", service_document)
    app.router.add_static("/docs/static", SWAGGER_STATIC)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app
