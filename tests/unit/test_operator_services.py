"""The operator's client of the services: one login shared by every handler that needs it."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestServer

from bmt_operator.services import Services
from bmt_operator.settings import OperatorSettings


async def test_concurrent_handlers_share_one_login() -> None:
    logins = 0

    async def login(_: web.Request) -> web.Response:
        nonlocal logins
        logins += 1
        await asyncio.sleep(0.05)  # a password check takes a while
        return web.json_response({"access_token": f"t{logins}", "expires_in": 600})

    app = web.Application()
    app.router.add_post("/v1/auth/login", login)
    async with TestServer(app) as server:
        services = Services(OperatorSettings(user_url=str(server.make_url("")).rstrip("/")))
        try:
            tokens = await asyncio.gather(*(services._login() for _ in range(50)))
        finally:
            await services.close()
    assert logins == 1
    assert set(tokens) == {"t1"}
