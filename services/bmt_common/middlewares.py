"""The middlewares every service runs: request ids, metrics and access logs, problem+json errors."""

from __future__ import annotations

import logging
import re
import time
import uuid

import aiohttp
import asyncpg
from aiohttp import web
from prometheus_client import Counter, Histogram

from bmt_common import logs
from bmt_common.inputs import MAX_BODY
from bmt_common.problems import Problem
from bmt_common.routes import Handler

log = logging.getLogger(__name__)
access = logging.getLogger("bmt.access")

SERVICE = web.AppKey("service", str)

REQUESTS = Counter(
    "bmt_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "bmt_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Probes, scrapes and the gateway's route refresh come every few seconds: counted in
# metrics, kept out of the logs.
QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics", "/openapi.json"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# Connection refused or reset, timeouts (TimeoutError is an OSError), a lost or not yet
# accepting database: the request may succeed once the dependency is back.
UNAVAILABLE = (
    OSError,
    aiohttp.ClientConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def _too_large(request: web.Request) -> Problem:
    return Problem(413, f"The body is larger than the limit of {request.app[MAX_BODY]} bytes")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    rid = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    token = logs.request_id.set(rid)
    try:
        response = await handler(request)
        if not response.prepared:  # a streamed response set its own
            response.headers["X-Request-Id"] = rid
        return response
    finally:
        logs.request_id.reset(token)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except web.HTTPRequestEntityTooLarge:
        return _too_large(request).response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {
            404: f"No route matches {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.status, exc.reason)
        allow = {k: v for k, v in exc.headers.items() if k == "Allow"}
        return Problem(exc.status, detail, headers=allow).response(request.path)
    except UNAVAILABLE as exc:
        # A dependency is down for a moment (a restart, a failover): say so and when to retry.
        log.warning("%s %s: a dependency is unavailable: %r", request.method, request.path, exc)
        return Problem(
            503,
            "A component this request needs is unavailable for a moment; retry shortly",
            headers={"Retry-After": "1"},
        ).response(request.path)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return Problem(500, "An unexpected error occurred; it has been logged").response(
            request.path
        )


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Metrics and one access-log line per request (under its request id)."""
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    service = request.app[SERVICE]
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        REQUESTS.labels(service, request.method, route, str(status)).inc()
        LATENCY.labels(service, request.method, route).observe(elapsed)
        if route not in QUIET_ROUTES:
            access.info(
                "%s %s %s",
                request.method,
                request.path,
                status,
                extra={"status": status, "route": route, "ms": round(elapsed * 1000, 2)},
            )
