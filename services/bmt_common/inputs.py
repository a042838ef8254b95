"""Reading a request: the checked values a handler gets, bodies under a size cap, NUL refused."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from bmt_common.auth import Claims
from bmt_common.problems import Problem, from_validation

M = TypeVar("M", bound=BaseModel)

MAX_BODY = web.AppKey("max_body", int)
MAX_JSON = web.AppKey("max_json", int)
# PostgreSQL text cannot hold U+0000: refused at the door, not as a 500 from the database.
NUL_MESSAGE = "Text must not contain the NUL character (U+0000)"


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
            f"The {where} is invalid: {field or where}: {NUL_MESSAGE}",
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


async def read_json(request: web.Request, model: type[M]) -> M:
    """A JSON body validated as `model`: 415 if not JSON, 413 over the cap, 400 or 422 if bad."""
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
