"""The gateway as clients meet it: routing, errors, request ids, rate limits, documents."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bmt_stack.config import HOST, StackSettings
from support import Client, eventually


async def test_docs_page_lists_every_service(http: aiohttp.ClientSession, gateway: str) -> None:
    async with http.get(f"{gateway}/docs") as response:
        assert response.status == 200
        page = await response.text()
    assert "/docs/openapi/user.json" in page
    assert "/docs/openapi/product.json" in page
    async with http.get(f"{gateway}/docs/openapi/user.json") as response:
        document = await response.json()
    assert document["servers"] == [{"url": "/"}]
    assert document["paths"]["/v1/auth/login"]["post"]["requestBody"]
    async with http.get(f"{gateway}/docs/static/swagger-ui-bundle.js") as response:
        assert response.status == 200


async def test_unknown_routes_and_methods_are_problems(client: Client) -> None:
    status, problem = await client.call("GET", "/v1/nothing-here")
    assert status == 404
    assert problem["detail"] == "No route matches /v1/nothing-here"
    async with client.http.delete(client.base + "/v1/films", headers=client.headers()) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, POST"
        assert response.content_type == "application/problem+json"


async def test_a_request_id_travels_to_the_service(
    client: Client, bmt_platform: StackSettings
) -> None:
    rid = f"test-{uuid.uuid4().hex}"
    async with client.http.post(
        client.base + "/v1/auth/login",
        json={"email": "nobody@example.com", "password": "irrelevant"},
        headers={**client.headers(), "X-Request-Id": rid},
    ) as response:
        assert response.status == 401
        assert response.headers["X-Request-Id"] == rid
    log = Path(bmt_platform.logs / "user.log")

    async def logged() -> bool | None:
        return True if rid in await asyncio.to_thread(log.read_text) else None

    # The service's access log carries the gateway's id.
    await eventually(logged, 10, "the request id in the user service's log")


async def test_password_routes_are_rate_limited_per_client(
    client: Client, new_client: object
) -> None:
    body = {"email": "nobody@example.com", "password": "wrong password"}

    async def login() -> tuple[int, str | None, Any]:
        async with client.http.post(
            client.base + "/v1/auth/login", json=body, headers=client.headers()
        ) as r:
            return r.status, r.headers.get("Retry-After"), await r.json(content_type=None)

    # At once: one by one, slow password checks on a busy machine let the bucket refill (3 s).
    answers = await asyncio.gather(*(login() for _ in range(15)))
    assert sorted(status for status, _, _ in answers) == [401] * 10 + [429] * 5
    for _, retry_after, problem in (a for a in answers if a[0] == 429):
        assert retry_after is not None
        assert int(retry_after) >= 1
        assert problem["detail"].startswith("Too many requests")
    other = Client(client.http, client.base)  # another client is not affected
    assert (await other.call("POST", "/v1/auth/login", json=body))[0] == 401


async def test_services_trust_no_identity_header(
    http: aiohttp.ClientSession, bmt_platform: StackSettings
) -> None:
    product = f"http://{HOST}:{bmt_platform.port_product}"
    forged = {
        "X-User-Email": "admin@bmt.local",
        "X-User-Role": "admin",
        "X-Forwarded-For": "1.2.3.4",
    }
    async with http.post(f"{product}/v1/fabs", headers=forged, data={"name": "x"}) as response:
        assert response.status == 401
    async with http.post(
        f"{product}/v1/fabs",
        headers={**forged, "Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJyb2xlIjoiYWRtaW4ifQ."},
        data={"name": "x"},
    ) as response:
        assert response.status == 401
        assert "not accepted" in (await response.json(content_type=None))["detail"]
