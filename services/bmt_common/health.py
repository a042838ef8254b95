"""Liveness, readiness (the checks a service registers) and the Prometheus metrics endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# A check answers None when its part is ready, else why not.
ReadyCheck = Callable[[], Awaitable[str | None]]
READY_CHECKS = web.AppKey("ready_checks", list[ReadyCheck])


async def _live(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _ready(request: web.Request) -> web.Response:
    failing = {}
    for check in request.app[READY_CHECKS]:
        reason = await check()
        if reason:
            failing[check.__qualname__] = reason
    if failing:
        return web.json_response({"status": "not ready", "checks": failing}, status=503)
    return web.json_response({"status": "ready"})


async def _metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def install(app: web.Application) -> None:
    """Adds /health/live, /health/ready and /metrics, with no checks registered yet."""
    app[READY_CHECKS] = []
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/metrics", _metrics)
