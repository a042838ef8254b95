"""What the security suites share: a raw caller (a new client address per request, so the
gateway's rate limits never blur what is tested), accounts of each role, and one scene of
resources (film, FAB, cinema, showtimes, a paid order with tickets and a pending order) owned
by one customer."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bmt_stack.config import HOST, StackSettings
from support import HALL, Client, eventually, seat_ids, seat_map

PASSWORD = "a long enough password"
PROBLEM = "application/problem+json"
SERVICES = ("user", "product", "showtime", "order", "payment")


_ADDRESSES = random.SystemRandom()  # never seeded: hypothesis reseeds the global `random`


def any_address() -> str:
    """A client address of its own: a fresh rate-limit bucket at the (local) gateway."""
    pick = _ADDRESSES.randrange
    return f"10.{pick(250)}.{pick(250)}.{pick(1, 250)}"


def service_url(settings: StackSettings, service: str) -> str:
    return f"http://{HOST}:{getattr(settings, f'port_{service}')}"


@dataclass
class Answer:
    status: int
    content_type: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def is_problem(self) -> bool:
        return (
            self.content_type == PROBLEM
            and isinstance(self.body, dict)
            and self.body.get("status") == self.status
            and bool(self.body.get("detail"))
        )


async def call(
    http: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    sent = {"X-Forwarded-For": any_address(), **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    async with http.request(
        method, base + path, headers=sent, allow_redirects=False, **kwargs
    ) as response:
        body: Any = None
        if response.content_type in ("application/json", PROBLEM):
            body = await response.json(content_type=None)
        elif response.content_type.startswith("text/"):
            body = await response.text()
        else:
            body = await response.read()
        return Answer(response.status, response.content_type, body, dict(response.headers))


@dataclass
class Account:
    email: str
    password: str
    role: str
    token: str
    user_id: int


async def login(http: aiohttp.ClientSession, user_url: str, email: str, password: str) -> str:
    """A new session's access token (straight to the user service: no gateway rate limit)."""
    answer = await call(
        http, user_url, "POST", "/v1/auth/login", json={"email": email, "password": password}
    )
    assert answer.status == 200, answer
    return str(answer.body["access_token"])


async def new_account(
    http: aiohttp.ClientSession, settings: StackSettings, admin: Client, role: str, tag: str
) -> Account:
    email = f"{role}-{tag}-{random.randrange(10**9)}@example.com"
    status, body = await admin.call(
        "POST",
        "/v1/users",
        json={"email": email, "password": PASSWORD, "name": f"{role} {tag}", "role": role},
    )
    assert status == 201, body
    token = await login(http, service_url(settings, "user"), email, PASSWORD)
    return Account(email, PASSWORD, role, token, int(body["id"]))


async def pay(http: aiohttp.ClientSession, sandbox: str, payment_url: str, **options: Any) -> Any:
    async with http.post(
        f"{sandbox}/sandbox/pay", json={"payment_url": payment_url, **options}
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return body


async def tickets_of(http: aiohttp.ClientSession, gateway: str, token: str, order_id: int) -> Any:
    async def issued() -> list[dict[str, Any]] | None:
        answer = await call(http, gateway, "GET", f"/v1/orders/{order_id}/tickets", token=token)
        assert answer.status == 200, answer
        return list(answer.body["items"]) or None

    return await eventually(issued, 30, f"the tickets of order {order_id}")


@dataclass
class Scene:
    unique: str
    owner: Account
    other: Account
    staff: Account
    film_id: int
    film_key: str
    fab_id: int
    cinema_id: int
    cinema_key: str
    hall_id: int
    showtime_id: int
    showtime_key: str
    unreleased_id: int
    paid_order: dict[str, Any]
    payment: dict[str, Any]
    tickets: list[dict[str, Any]]
    pending_order: dict[str, Any]
    free_seat: int


async def build_scene(
    http: aiohttp.ClientSession,
    settings: StackSettings,
    admin: Client,
    sandbox: str,
    unique: str,
    provider: str = "vnpay",
) -> Scene:
    owner = await new_account(http, settings, admin, "customer", unique)
    other = await new_account(http, settings, admin, "customer", unique)
    staff = await new_account(http, settings, admin, "staff", unique)
    film_key, cinema_key, showtime_key = (f"{kind}-{unique}" for kind in ("film", "cin", "show"))
    status, film = await admin.call(
        "PUT",
        f"/v1/films/by-key/{film_key}",
        json={
            "title": f"Film {unique}",
            "release_date": "2026-12-01",
            "duration_minutes": 100,
            "age_rating": "T13",
            "genres": ["drama"],
        },
    )
    assert status in (200, 201), film
    status, fab = await admin.call(
        "POST", "/v1/fabs", data={"name": f"Popcorn {unique}", "kind": "food", "price": "45000"}
    )
    assert status == 201, fab
    status, cinema = await admin.call(
        "PUT",
        f"/v1/cinemas/by-key/{cinema_key}",
        json={"name": f"BMT {unique}", "city": "Hue", "address": "1 Le Loi", "halls": [HALL]},
    )
    assert status in (200, 201), cinema
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    status, showtime = await admin.call(
        "PUT",
        f"/v1/showtimes/by-key/{showtime_key}",
        json={
            "film_id": film["id"],
            "cinema_key": cinema_key,
            "hall": HALL["name"],
            "starts_at": starts.isoformat(),
            "released": True,
        },
    )
    assert status in (200, 201), showtime
    status, unreleased = await admin.call(
        "POST",
        "/v1/showtimes",
        json={
            "film_id": film["id"],
            "hall_id": cinema["halls"][0]["id"],
            "starts_at": (starts + dt.timedelta(days=1)).isoformat(),
        },
    )
    assert status == 201, unreleased
    gateway = admin.base
    shopper = Client(http, gateway)
    shopper.token = owner.token
    seats = await seat_map(shopper, showtime["id"])
    status, paid_order = await shopper.call(
        "POST",
        "/v1/orders",
        json={"showtime_id": showtime["id"], "seats": seat_ids(seats, "B4", "B5")},
    )
    assert status == 201, paid_order
    status, payment = await shopper.call(
        "POST", "/v1/payments", json={"order_id": paid_order["id"], "provider": provider}
    )
    assert status == 201, payment
    await pay(http, sandbox, payment["payment_url"], outcome="success")
    issued = await tickets_of(http, gateway, owner.token, paid_order["id"])
    status, pending = await shopper.call(
        "POST",
        "/v1/orders",
        json={"showtime_id": showtime["id"], "seats": seat_ids(seats, "A2")},
    )
    assert status == 201, pending
    return Scene(
        unique=unique,
        owner=owner,
        other=other,
        staff=staff,
        film_id=int(film["id"]),
        film_key=film_key,
        fab_id=int(fab["id"]),
        cinema_id=int(cinema["id"]),
        cinema_key=cinema_key,
        hall_id=int(cinema["halls"][0]["id"]),
        showtime_id=int(showtime["id"]),
        showtime_key=showtime_key,
        unreleased_id=int(unreleased["id"]),
        paid_order=dict(paid_order),
        payment=dict(payment),
        tickets=issued,
        pending_order=dict(pending),
        free_seat=seat_ids(seats, "A3")[0],
    )
