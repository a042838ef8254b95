"""The base application every service builds on, and work that runs for the life of one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from bmt_common import health
from bmt_common.auth import JwtVerifier
from bmt_common.bearer import VERIFIER
from bmt_common.health import READY_CHECKS
from bmt_common.inputs import MAX_BODY, MAX_JSON
from bmt_common.middlewares import (
    SERVICE,
    observe_middleware,
    problem_middleware,
    request_id_middleware,
)
from bmt_common.openapi import build
from bmt_common.routes import Api


@contextlib.asynccontextmanager
async def background(
    app: web.Application,
    work: Coroutine[Any, Any, None],
    name: str,
    ready: Callable[[], str | None],
) -> AsyncIterator[None]:
    """Runs `work` for the life of the app (inside a cleanup context); the app is ready while
    it runs and `ready()` finds nothing missing."""
    task = asyncio.create_task(work, name=name)

    async def running() -> str | None:
        if task.done():
            return f"{name} stopped: {task.exception()!r}"
        return ready()

    app[READY_CHECKS].append(running)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def create_app(
    service: str,
    api: Api | None,
    *,
    verifier: JwtVerifier | None,
    max_body_bytes: int,
    max_json_bytes: int = 1024 * 1024,
    decompress: bool = True,
) -> web.Application:
    """The base application: middlewares, health, metrics, the API's routes, token verification.
    `decompress=False` keeps request bodies as sent (Content-Encoding and all), for a proxy."""
    app = web.Application(
        # Outermost the request id, so every log line carries it; metrics outside problems, so
        # they count the status a client is answered with.
        middlewares=[request_id_middleware, observe_middleware, problem_middleware],
        client_max_size=max_body_bytes,
        handler_args={"auto_decompress": decompress},
    )
    app[SERVICE] = service
    app[MAX_BODY] = max_body_bytes
    app[MAX_JSON] = max_json_bytes
    if verifier is not None:
        app[VERIFIER] = verifier

        async def verifier_ctx(_: web.Application) -> AsyncIterator[None]:
            yield
            await verifier.close()

        app.cleanup_ctx.append(verifier_ctx)
    health.install(app)
    if api is not None:
        api.install(app)
        # Written once at startup: a model that cannot be described fails there, not later.
        document = build(api)

        async def openapi(_: web.Request) -> web.Response:
            return web.json_response(document)

        app.router.add_get("/openapi.json", openapi)
    return app
