"""A steady load of every kind of client, counted: what was asked, what failed, and what the
platform acknowledged (so that the checks afterwards know what must not have been lost)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from crs import showtime
from kube import Kube
from support import Client, film_form

# Every fifth order is left unpaid: its hold must expire and free the seat.
UNPAID_EVERY = 5


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    last_errors: list[str] = field(default_factory=list)
    # journey -> (started, finished) of each success, on the monotonic clock
    successes: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    acknowledged: list[int] = field(default_factory=list)  # orders answered 201
    paid: list[int] = field(default_factory=list)  # orders whose IPN answered "00"
    emails: list[str] = field(default_factory=list)  # OTP requests answered 202
    films: list[tuple[int, float]] = field(default_factory=list)  # (film, acknowledged at)
    showtimes: list[str] = field(default_factory=list)  # Showtime resources applied

    def failed(self, what: str) -> None:
        self.errors += 1
        self.last_errors = [*self.last_errors[-4:], what]

    def recovered(self, since: float) -> float | None:
        """When every journey had succeeded again, starting after `since`; None if not yet."""
        firsts = [
            next((done for started, done in runs if started >= since), None)
            for runs in self.successes.values()
        ]
        if not firsts or None in firsts:
            return None
        return max(f for f in firsts if f is not None)


@dataclass
class Shop:
    """The clients of one fault case and what they share."""

    customers: list[Client]
    admin: Client
    new_client: Callable[[], Client]
    login: dict[str, str]  # the credentials the login journey signs in with
    http: aiohttp.ClientSession
    sandbox: str
    showtime_id: int
    seats: asyncio.Queue[int]
    kube: Kube
    namespace: str
    tally: Tally = field(default_factory=Tally)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def journeys(self) -> list[Coroutine[Any, Any, None]]:
        return [
            *(self._book_and_pay(c) for c in self.customers),
            self._repeat("browse", self._browse, 0.5),
            self._repeat("login", self._login, 1.0),
            self._repeat("register", self._register, 0.5),
            self._repeat("upload", self._upload, 1.0),
            self._repeat("operator", self._apply_showtime, 1.0),
        ]

    async def _call(self, who: Client, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        self.tally.requests += 1
        try:
            status, body = await who.call(method, path, **kwargs)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 0, repr(exc)
        return status, body

    async def _pause(self, seconds: float) -> None:
        """Paces a journey (a client's think time) and ends it at once when the load stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _repeat(
        self, journey: str, step: Callable[[], Awaitable[str | None]], every: float
    ) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            problem = await step()
            if problem is None:
                self.tally.successes[journey].append((started, time.monotonic()))
            else:
                self.tally.failed(f"{journey}: {problem}")
            await self._pause(every)

    async def _book_and_pay(self, customer: Client) -> None:
        booked = 0
        while not self.stop.is_set():
            try:
                seat = self.seats.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.monotonic()
            status, order = await self._call(
                customer,
                "POST",
                "/v1/orders",
                json={"showtime_id": self.showtime_id, "seats": [seat]},
            )
            if status != 201:
                self.tally.failed(f"book: {status} {order}")
                if status != 409:  # 409: an attempt whose answer was lost did hold it
                    self.seats.put_nowait(seat)
                await self._pause(0.25)
                continue
            self.tally.acknowledged.append(order["id"])
            self.tally.successes["book"].append((started, time.monotonic()))
            booked += 1
            if booked % UNPAID_EVERY:
                started = time.monotonic()
                problem = await self._pay(customer, order["id"])
                if problem is None:
                    self.tally.paid.append(order["id"])
                    self.tally.successes["pay"].append((started, time.monotonic()))
                else:
                    self.tally.failed(f"pay: {problem}")
            await self._pause(0.25)

    async def _pay(self, customer: Client, order_id: int) -> str | None:
        status, payment = await self._call(
            customer, "POST", "/v1/payments", json={"order_id": order_id, "provider": "vnpay"}
        )
        if status != 201:
            return f"{status} {payment}"
        self.tally.requests += 1
        try:
            async with self.http.post(
                f"{self.sandbox}/sandbox/pay",
                json={"payment_url": payment["payment_url"], "outcome": "success"},
            ) as response:
                paid = await response.json() if response.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            return repr(exc)
        answers = paid.get("ipn_responses") or [{}]
        code = answers[-1].get("body", {}).get("RspCode")
        return None if code == "00" else f"IPN answered {answers[-1]}"

    async def _browse(self) -> str | None:
        who = self.customers[0]
        status, films = await self._call(who, "GET", "/v1/films", params={"limit": "5"})
        if status != 200:
            return f"films {status} {films}"
        status, seats = await self._call(who, "GET", f"/v1/showtimes/{self.showtime_id}/seats")
        return None if status == 200 else f"seats {status} {seats}"

    async def _login(self) -> str | None:
        status, body = await self._call(
            self.new_client(), "POST", "/v1/auth/login", json=self.login
        )
        return None if status == 200 else f"{status} {body}"

    async def _register(self) -> str | None:
        email = f"chaos-{uuid.uuid4().hex[:12]}@example.com"
        status, body = await self._call(
            self.new_client(), "POST", "/v1/auth/register/otp", json={"email": email}
        )
        if status != 202:
            return f"{status} {body}"
        self.tally.emails.append(email)
        return None

    async def _upload(self) -> str | None:
        form = film_form(title=f"Chaos {uuid.uuid4().hex[:8]}")
        status, film = await self._call(self.admin, "POST", "/v1/films", data=form)
        if status != 201:
            return f"{status} {film}"
        self.tally.films.append((film["id"], time.monotonic()))
        return None

    async def _apply_showtime(self) -> str | None:
        """Applies one more Showtime resource and waits for the operator to make it Ready."""
        index = len(self.tally.showtimes)
        name = f"st-{index}"
        starts = dt.datetime(2027, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=3 * index)
        self.tally.requests += 1
        applied = await asyncio.to_thread(
            self.kube.apply,
            showtime(
                name,
                self.namespace,
                starts.isoformat(),
                filmRef="chaos-film",
                cinemaRef="chaos-cinema",
            ),
            check=False,
        )
        if applied.returncode != 0:
            return applied.stderr.strip()
        self.tally.showtimes.append(name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = await asyncio.to_thread(self.kube.get, "showtime", name, self.namespace)
            if ready(found):
                return None
            await self._pause(0.3)
        return f"showtime {name} not Ready within 60 s"


def ready(resource: dict[str, Any] | None) -> bool:
    conditions = ((resource or {}).get("status") or {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
