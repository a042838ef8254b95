"""Starting a service process: logs first, then the app on its port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvloop
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web_protocol import RequestHandler

from bmt_common import logs
from bmt_common.problems import Problem
from bmt_common.settings import ServiceSettings

log = logging.getLogger(__name__)


class _ProblemHandler(RequestHandler):
    """Answers requests aiohttp cannot even parse (a header over 8190 bytes, too many
    headers, broken framing) with problem+json too: no middleware sees them."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        if request.writer.output_size > 0:
            raise ConnectionError("an answer was already sent")
        if isinstance(exc, LineTooLong):
            problem = Problem(
                431, f"The request line or a header is longer than {exc.args[1]} bytes"
            )
        elif exc.message.startswith("Too many headers"):
            problem = Problem(431, f"The request has more than {self.max_headers} headers")
        else:
            # The first line only: the rest quotes the offending bytes back.
            problem = Problem(400, f"The request is not valid HTTP: {exc.message.splitlines()[0]}")
        log.warning("refused an unparsable request from %s: %s", request.remote, problem.detail)
        problem.close = True
        return problem.response()


class _ProblemServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _ProblemHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _ProblemServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **plain._kwargs,
        )


def serve(name: str, settings: ServiceSettings, factory: Callable[[], web.Application]) -> None:
    logs.setup(name, settings.log_level)
    # uvloop: the same asyncio, a faster event loop underneath (libuv).
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # web.run_app, but with the runner above; SIGTERM and SIGINT raise GracefulExit.
    runner = _Runner(factory(), access_log=None, handle_signals=True, keepalive_timeout=75.0)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()

    try:
        loop.run_until_complete(start())
        loop.run_forever()
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
