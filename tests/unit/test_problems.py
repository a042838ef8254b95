"""What a client is told when a handler fails: a dependency that is down is a 503 to retry,
anything else a 500 that tells nothing of the inside."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import Field, ValidationError

from bmt_common.fields import Strict
from bmt_common.middlewares import problem_middleware
from bmt_common.problems import from_validation


async def answer_when_raising(exc: BaseException) -> tuple[int, dict[str, str], dict[str, object]]:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    app = web.Application(middlewares=[problem_middleware])
    app.router.add_get("/v1/things", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/things")
        assert response.content_type == "application/problem+json"
        return response.status, dict(response.headers), await response.json()


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        aiohttp.ServerDisconnectedError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
async def test_a_dependency_down_is_a_503_to_retry(exc: BaseException) -> None:
    status, headers, body = await answer_when_raising(exc)
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert body["status"] == 503
    assert "retry" in str(body["detail"])


async def test_a_bug_is_a_500_that_reveals_nothing() -> None:
    status, headers, body = await answer_when_raising(KeyError("secret internals"))
    assert status == 500
    assert "Retry-After" not in headers
    assert "secret" not in str(body)


class _Booking(Strict):
    seats: list[int] = Field(min_length=1, max_length=2)
    note: str = ""


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (
            {"seats": [1, 2, 3]},
            "The body is invalid: seats: List should have at most 2 items after validation, not 3",
        ),
        ({}, "The body is invalid: seats: is required"),
        ([1], "The body is invalid: it should be an object"),
        (
            {"seats": [1], "extra": 1, "note": 5},
            "The body is invalid: note: Input should be a valid string; extra: is not a field"
            " of this request",
        ),
        (
            {"seats": ["a", "b"], "note": 1, "x": 1, "y": 2},
            "The body is invalid: seats.0: Input should be a valid integer, unable to parse string"
            " as an integer; seats.1: Input should be a valid integer, unable to parse string as"
            " an integer; note: Input should be a valid string (and 2 more)",
        ),
    ],
)
def test_a_validation_detail_gives_each_field_its_reason(data: object, detail: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Booking.model_validate(data)
    problem = from_validation(caught.value)
    assert problem.detail == detail
    assert problem.errors
    assert all(e["message"] and "_Booking" not in e["message"] for e in problem.errors)
