"""The web plumbing of every service: a route table that also writes the OpenAPI document,
request ids, problem+json errors, authentication by role, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from bmt_common import logs
from bmt_common.auth import Claims, JwtVerifier, TokenError
from bmt_common.problems import PROBLEM_JSON, Problem, from_validation

log = logging.getLogger(__name__)
access = logging.getLogger("bmt.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadyCheck = Callable[[], Awaitable[str | None]]
M = TypeVar("M", bound=BaseModel)

VERIFIER = web.AppKey("verifier", JwtVerifier)
READY_CHECKS = web.AppKey("ready_checks", list[ReadyCheck])


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


SERVICE = web.AppKey("service", str)
MAX_BODY = web.AppKey("max_body", int)
MAX_JSON = web.AppKey("max_json", int)
# PostgreSQL text cannot hold U+0000: refused at the door, not as a 500 from the database.
NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"

REQUESTS = Counter(
    "bmt_http_requests_total", "HTTP requests served", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "bmt_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Who may call: None (anyone), "user" (any signed-in account), or a role; admins pass every check.
ROLES = ("customer", "staff", "admin")
# Probes, scrapes and the gateway's route refresh come every few seconds: counted in
# metrics, kept out of the logs.
QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics", "/openapi.json"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    files: dict[str, str] = field(default_factory=dict)
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()


class Api:
    """A service's route table. Each route says who may call it and what it takes and gives;
    the same declaration checks requests and writes `/openapi.json`."""

    def __init__(self, title: str, description: str = "", version: str = "1.0.0") -> None:
        self.title = title
        self.description = description
        self.version = version
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: str | None = None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        form: type[BaseModel] | None = None,
        files: dict[str, str] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        assert auth in (None, "user", *ROLES), auth

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    auth,
                    body,
                    query,
                    form,
                    files or {},
                    response,
                    status,
                    errors,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, _checked(op))
        document = self.openapi()

        async def openapi(_: web.Request) -> web.Response:
            return web.json_response(document)

        app.router.add_get("/openapi.json", openapi)

    def openapi(self) -> dict[str, Any]:
        from bmt_common.openapi import build

        return build(self)


def _checked(op: Operation) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if any("\x00" in value for value in request.match_info.values()):
            raise Problem(400, "The path must not contain the NUL character (%00)")
        if op.auth is not None:
            request["claims"] = await authenticate(request, op.auth)
        if op.body is not None:
            request["body"] = await _read_json(request, op.body)
        if op.query is not None:
            query = dict(request.query)
            refuse_nul(query, "query")
            try:
                request["query"] = op.query.model_validate(query)
            except ValidationError as exc:
                raise from_validation(exc, "query") from None
        return await op.handler(request)

    return handler


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


def path_id(request: web.Request, name: str = "id") -> int:
    """A numeric path parameter; anything else names no resource (404, not a server error)."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise Problem(404, f"{raw!r} is not an id of this collection")
    return int(raw)


def claims_of(request: web.Request) -> Claims:
    claims = request["claims"]
    assert isinstance(claims, Claims)
    return claims


def body_of(request: web.Request, model: type[M]) -> M:
    body = request["body"]
    assert isinstance(body, model), f"route declared {type(body).__name__}, handler read {model}"
    return body


def query_of(request: web.Request, model: type[M]) -> M:
    query = request["query"]
    assert isinstance(query, model)
    return query


def nul_at(value: Any, where: str) -> str | None:
    """Where (a dotted field path) a NUL character hides in parsed JSON or form data."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if not isinstance(value, dict | list):
        return None
    items: Any = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        path = f"{where}.{key}" if where else str(key)
        if "\x00" in str(key):
            return path
        if (found := nul_at(item, path)) is not None:
            return found
    return None


def refuse_nul(value: Any, where: str) -> None:
    field = nul_at(value, "")
    if field is not None:
        raise Problem(
            422,
            f"The {where} is invalid: {field or where}",
            errors=[{"field": field or where, "message": NUL_MESSAGE}],
        )


async def read_body(request: web.Request, limit: int, what: str = "body") -> bytes:
    """The whole body (decoded as its Content-Encoding says), refused past `limit` bytes,
    as it streams in rather than after buffering it all."""

    def too_large() -> Problem:
        return Problem(413, f"The {what} is larger than the limit of {limit} bytes", close=True)

    if request.content_length is not None and request.content_length > limit:
        raise too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise too_large()
            chunks.append(chunk)
    except web.RequestPayloadError as exc:
        cause = exc.__cause__
        reason = cause.message if isinstance(cause, HttpProcessingError) else str(exc)
        raise Problem(400, f"The body cannot be read: {reason}", close=True) from None
    except ConnectionResetError:
        # The client went away mid-body: nobody reads this answer, but the logs and
        # metrics tell a client's mistake, not a server error.
        raise Problem(400, "The body ended before its declared length", close=True) from None
    return b"".join(chunks)


async def _read_json(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise Problem(415, f"The body must be application/json, not {request.content_type!r}")
    # JSON is parsed in memory: it gets its own cap, below the upload-sized body limit.
    limit = min(request.app[MAX_BODY], request.app[MAX_JSON])
    raw = await read_body(request, limit, "JSON body")
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise Problem(400, "The body is not valid JSON") from None
        raise from_validation(exc) from None
    if b"\\u0000" in raw:  # the only way a NUL gets into valid JSON
        refuse_nul(from_json(raw), "body")
    return parsed


def json_response(model: BaseModel | list[Any], status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        text = model.model_dump_json()
    else:
        text = json.dumps(
            [m.model_dump(mode="json") if isinstance(m, BaseModel) else m for m in model]
        )
    return web.Response(text=text, status=status, content_type="application/json")


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


# Connection refused or reset, timeouts (TimeoutError is an OSError), a lost or not yet
# accepting database: the request may succeed once the dependency is back.
UNAVAILABLE = (
    OSError,
    aiohttp.ClientConnectionError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


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
        middlewares=[request_id_middleware, observe_middleware, problem_middleware],
        client_max_size=max_body_bytes,
        handler_args={"auto_decompress": decompress},
    )
    app[SERVICE] = service
    app[MAX_BODY] = max_body_bytes
    app[MAX_JSON] = max_json_bytes
    app[READY_CHECKS] = []
    if verifier is not None:
        app[VERIFIER] = verifier

        async def verifier_ctx(_: web.Application) -> AsyncIterator[None]:
            yield
            await verifier.close()

        app.cleanup_ctx.append(verifier_ctx)
    app.router.add_get("/health/live", _live)
    app.router.add_get("/health/ready", _ready)
    app.router.add_get("/metrics", _metrics)
    if api is not None:
        api.install(app)
    return app


def problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"RFC 9457 problem details ({PROBLEM_JSON})",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
