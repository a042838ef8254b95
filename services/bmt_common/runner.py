"""Starting a service process: logs first, then the app on its port."""

from __future__ import annotations

from collections.abc import Callable

import uvloop
from aiohttp import web

from bmt_common import logs
from bmt_common.settings import ServiceSettings


def serve(name: str, settings: ServiceSettings, factory: Callable[[], web.Application]) -> None:
    logs.setup(name, settings.log_level)
    # uvloop: the same asyncio, a faster event loop underneath (libuv).
    web.run_app(
        factory(),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )
