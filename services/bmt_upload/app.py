"""The upload service's app: health, readiness and metrics around the SQS worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bmt_common.app import background, create_app
from bmt_common.kafka import Producer
from bmt_upload.settings import UploadSettings
from bmt_upload.worker import Worker

SETTINGS = web.AppKey("settings", UploadSettings)


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    producer = Producer(settings.kafka_bootstrap)
    await producer.start()
    worker = Worker(settings, producer)
    try:
        async with background(
            app,
            worker.run(),
            "the SQS worker",
            lambda: None if worker.queue_url else f"queue {settings.media_queue} not reachable",
        ):
            yield
    finally:
        await producer.stop()


def make_app(settings: UploadSettings) -> web.Application:
    app = create_app("upload", None, verifier=None, max_body_bytes=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(worker_ctx)
    return app
