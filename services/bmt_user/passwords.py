"""Password hashing off the event loop, a bounded number at once: an argon2id hash takes 64 MiB,
so the pool's size, not a burst of logins, decides how much memory the service needs (a pod with a
384 MiB limit was OOM-killed by six at once, the default executor's size on two cores)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from bmt_user import domain


class Passwords:
    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, domain.hash_password, password
        )

    async def matches(self, stored: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, domain.password_matches, stored, password
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


PASSWORDS = web.AppKey("passwords", Passwords)


def install(app: web.Application, workers: int) -> None:
    app[PASSWORDS] = Passwords(workers)

    async def close(app: web.Application) -> None:
        app[PASSWORDS].close()

    app.on_cleanup.append(close)
