"""Set-up through the platform's own APIs: an admin, customers, a released showtime."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import string
from typing import Any

import aiohttp
import asyncpg

from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import HOST, StackSettings


def row_labels(count: int) -> list[str]:
    letters = string.ascii_uppercase
    return (list(letters) + [a + b for a in letters for b in letters])[:count]


class Platform:
    def __init__(self, settings: StackSettings, http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.http = http
        self.gateway = f"http://{HOST}:{settings.port_gateway}"
        self.admin_token = ""

    def url(self, service: str) -> str:
        return f"http://{HOST}:{getattr(self.settings, f'port_{service}')}"

    async def call(self, method: str, url: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["X-Forwarded-For"] = f"10.7.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
        async with self.http.request(method, url, headers=headers, **kwargs) as response:
            body = await response.json(content_type=None) if response.status != 204 else None
            if response.status >= 400:
                raise RuntimeError(f"{method} {url}: {response.status} {body}")
            return body

    async def login(self, email: str, password: str) -> str:
        body = await self.call(
            "POST", f"{self.url('user')}/v1/auth/login", json={"email": email, "password": password}
        )
        return str(body["access_token"])

    async def as_admin(self) -> None:
        self.admin_token = await self.login(ADMIN_EMAIL, Secrets(self.settings).admin_password())

    async def customers(self, count: int) -> list[str]:
        """Access tokens of `count` new customers."""
        run = secrets.token_hex(3)

        async def one(i: int) -> str:
            email, password = f"bench-{run}-{i}@example.com", "bench password 1"
            await self.call(
                "POST",
                f"{self.url('user')}/v1/users",
                self.admin_token,
                json={"email": email, "password": password, "name": "Bench", "role": "customer"},
            )
            return await self.login(email, password)

        tokens = []
        for batch in range(0, count, 8):
            tokens += await asyncio.gather(*(one(i) for i in range(batch, min(count, batch + 8))))
        return tokens

    async def showtime(self, seats: int) -> tuple[int, list[int]]:
        """A released showtime with `seats` standard seats; its id and seat ids."""
        per_row = 50 if seats >= 50 else seats
        rows = row_labels(max(1, seats // per_row))
        run = secrets.token_hex(4)
        cinema = await self.call(
            "POST",
            f"{self.url('showtime')}/v1/cinemas",
            self.admin_token,
            json={
                "name": f"Bench {run}",
                "city": "Bench",
                "address": "Bench",
                "halls": [
                    {
                        "name": "H",
                        "rows": [{"label": r, "seats": per_row, "price": 90_000} for r in rows],
                    }
                ],
            },
        )
        film = await self.call(
            "POST",
            f"{self.url('product')}/v1/films",
            self.admin_token,
            data={
                "title": f"Bench {run}",
                "release_date": "2026-12-01",
                "duration_minutes": "90",
                "age_rating": "P",
            },
        )
        starts = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        showtime = await self.call(
            "POST",
            f"{self.url('showtime')}/v1/showtimes",
            self.admin_token,
            json={
                "film_id": film["id"],
                "hall_id": cinema["halls"][0]["id"],
                "starts_at": starts.isoformat(),
            },
        )
        await self.call(
            "POST",
            f"{self.url('showtime')}/v1/showtimes/{showtime['id']}/release",
            self.admin_token,
        )
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            async with self.http.get(
                f"{self.url('order')}/v1/showtimes/{showtime['id']}/seats"
            ) as r:
                if r.status == 200:
                    seat_map = await r.json()
                    return int(showtime["id"]), [s["seat_id"] for s in seat_map["seats"]]
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the seat map did not appear")
            await asyncio.sleep(0.2)

    async def database(self, name: str) -> asyncpg.Connection:
        password = self.settings.postgres_password.get_secret_value()
        return await asyncpg.connect(
            f"postgresql://bmt:{password}@{HOST}:{self.settings.port_postgres}/{name}"
        )
