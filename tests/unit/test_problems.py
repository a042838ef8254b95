"""What a client is told when a handler fails: a dependency that is down is a 503 to retry,
anything else a 500 that tells nothing of the inside."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bmt_common.middlewares import problem_middleware


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
