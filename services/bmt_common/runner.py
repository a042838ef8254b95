"""Starting a service process: logs first, then the app on its port."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from bmt_common import logs
from bmt_common.settings import ServiceSettings


def serve(name: str, settings: ServiceSettings, factory: Callable[[], web.Application]) -> None:
    logs.setup(name, settings.log_level)
    web.run_app(factory(), host=settings.host, port=settings.port, print=None, access_log=None)
