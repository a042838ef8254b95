"""`bmt demo`: the three workshop flows, played as a client against the running platform,
each step printed with its result; and the demo catalogue that `bmt up` seeds.

Everything goes through the gateway, like any client. The only shortcut is reading the
code mail back from the local SES (moto), which a real client reads in its inbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
import time
from typing import Any

import aiohttp

from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import HOST, StackSettings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(256)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(1024)
DEMO_CINEMA = "bmt-demo-landmark"
DEMO_HALL = {
    "name": "Hall 1",
    "rows": [
        *({"label": r, "seats": 10, "seat_type": "standard", "price": 90_000} for r in "ABCDE"),
        *({"label": r, "seats": 10, "seat_type": "vip", "price": 130_000} for r in "FG"),
        {"label": "H", "seats": 8, "seat_type": "couple", "price": 220_000},
    ],
    "blocked": ["A1", "A10"],
}
DEMO_FILMS = (
    ("Mai", "2024-02-10", 131, "drama,romance", "T18"),
    ("Lat Mat 7", "2024-04-26", 138, "family,drama", "K"),
    ("Dao, Pho va Piano", "2025-02-10", 100, "historical,war", "T13"),
)


class DemoError(RuntimeError):
    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class Caller:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.token: str | None = None

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as r:
            body = await r.json(content_type=None) if r.status != 204 else None
            if r.status != expect:
                raise DemoError(f"{method} {path} answered {r.status}: {body}", r.status)
            return body


async def _free_slot(admin: Caller, film_id: int, hall: str) -> Any:
    """A showtime of the demo film in the demo hall, at a random time in the coming two months:
    each run adds one to the same hall, so a time another run took (409) is tried again."""
    for _ in range(20):
        starts = (
            dt.datetime.now(dt.UTC) + dt.timedelta(days=3, minutes=secrets.randbelow(60 * 24 * 60))
        ).replace(second=0, microsecond=0)
        try:
            return await admin.call(
                "PUT",
                f"/v1/showtimes/by-key/demo-{film_id}",
                200,
                json={
                    "film_id": film_id,
                    "cinema_key": DEMO_CINEMA,
                    "hall": hall,
                    "starts_at": starts.isoformat(),
                    "released": False,
                },
            )
        except DemoError as exc:
            if exc.status != 409:
                raise
    raise DemoError(f"no free time in {hall} in 20 tries")


def step(text: str, result: str = "") -> None:
    print(f"  {text:<58} {result}", flush=True)


async def poll(probe: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await probe()
        if value is not None:
            return value
        await asyncio.sleep(0.1)
    raise DemoError(f"{what} did not happen within {within:.0f}s")


def gateway_of(settings: StackSettings, url: str | None) -> str:
    """The gateway to play against: `url`, else the host's (`bmt up`)."""
    return (url or f"http://{HOST}:{settings.port_gateway}").rstrip("/")


async def login_admin(
    http: aiohttp.ClientSession, settings: StackSettings, gateway: str | None = None
) -> Caller:
    admin = Caller(http, gateway_of(settings, gateway))
    password = Secrets(settings).admin_password()
    tokens = await admin.call(
        "POST", "/v1/auth/login", 200, json={"email": ADMIN_EMAIL, "password": password}
    )
    admin.token = tokens["access_token"]
    return admin


async def seed(settings: StackSettings, gateway: str | None = None) -> dict[str, Any]:
    """The demo catalogue: a cinema, three films, released showtimes tomorrow (idempotent)."""
    async with aiohttp.ClientSession() as http:
        admin = await login_admin(http, settings, gateway)
        cinema = await admin.call(
            "PUT",
            f"/v1/cinemas/by-key/{DEMO_CINEMA}",
            200,
            json={
                "name": "BMT Landmark",
                "city": "Ho Chi Minh City",
                "address": "720A Dien Bien Phu, Binh Thanh",
                "halls": [DEMO_HALL],
            },
        )
        films = []
        for title, released, minutes, genres, rating in DEMO_FILMS:
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            spec = {
                "title": title,
                "release_date": released,
                "duration_minutes": minutes,
                "genres": genres.split(","),
                "age_rating": rating,
                # Put into the media bucket by `bmt up` (examples/media).
                "poster": {"object_key": "examples/poster.png"},
                "trailer": {"object_key": "examples/trailer.mp4"},
            }
            films.append(await admin.call("PUT", f"/v1/films/by-key/demo.{slug}", 200, json=spec))
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
        showtimes = []
        for i, film in enumerate(films):
            starts = dt.datetime.combine(tomorrow, dt.time(2 + 3 * i), tzinfo=dt.UTC)
            showtimes.append(
                await admin.call(
                    "PUT",
                    f"/v1/showtimes/by-key/demo-{tomorrow}-{i}",
                    200,
                    json={
                        "film_id": film["id"],
                        "cinema_key": DEMO_CINEMA,
                        "hall": "Hall 1",
                        "starts_at": starts.isoformat(),
                        "released": True,
                    },
                )
            )
    return {"cinema": cinema, "films": films, "showtimes": showtimes}


async def play(settings: StackSettings, url: str | None = None) -> None:
    gateway = gateway_of(settings, url)
    moto = f"http://{HOST}:{settings.port_moto}"
    sandbox = f"http://{HOST}:{settings.port_sandbox}"
    async with aiohttp.ClientSession() as http:
        client = Caller(http, gateway)
        email = f"demo-{secrets.token_hex(4)}@example.com"

        print("1. Registration: e-mail code, verification, account")
        started = time.monotonic()
        await client.call("POST", "/v1/auth/register/otp", 202, json={"email": email})
        step(f"POST /v1/auth/register/otp {email}", "202 accepted")

        async def mailed_code() -> str | None:
            async with http.get(f"{moto}/moto-api/data.json") as r:
                mails = (await r.json(content_type=None))["ses"]["Message"]
            for mail in mails:
                found = re.search(r"code: (\d{6})$", mail["subject"])
                if found and email in mail["destinations"]["ToAddresses"]:
                    return found.group(1)
            return None

        otp = await poll(mailed_code, 30, "the code mail")
        step(
            "mail received through user -> Kafka -> mail -> SES",
            f"code {otp} after {time.monotonic() - started:.2f}s",
        )
        verified = await client.call(
            "POST", "/v1/auth/register/verify", 200, json={"email": email, "otp": otp}
        )
        step("POST /v1/auth/register/verify", "200 verified")
        account = await client.call(
            "POST",
            "/v1/auth/register/complete",
            201,
            json={
                "verification_token": verified["verification_token"],
                "password": "demo password 1",
                "name": "Demo Client",
                "birthday": "1998-05-20",
                "sex": "other",
            },
        )
        step(
            "POST /v1/auth/register/complete",
            f"201 account {account['id']}, role {account['role']}",
        )
        tokens = await client.call(
            "POST", "/v1/auth/login", 200, json={"email": email, "password": "demo password 1"}
        )
        client.token = tokens["access_token"]
        step("POST /v1/auth/login", "200 access + refresh tokens")

        print("2. Media: an admin adds a film with poster and trailer")
        admin = await login_admin(http, settings, gateway)
        form = aiohttp.FormData()
        for name, value in (
            ("title", f"Demo film {secrets.token_hex(2)}"),
            ("release_date", "2026-12-20"),
            ("duration_minutes", "95"),
            ("genres", "animation,family"),
            ("age_rating", "P"),
        ):
            form.add_field(name, value)
        form.add_field("poster", PNG, filename="poster.png", content_type="image/png")
        form.add_field("trailer", MP4, filename="trailer.mp4", content_type="video/mp4")
        started = time.monotonic()
        film = await admin.call("POST", "/v1/films", 201, data=form)
        step(
            "POST /v1/films (multipart, poster + trailer)", f"201 film {film['id']}, media pending"
        )

        async def media_ready() -> dict[str, Any] | None:
            body = await client.call("GET", f"/v1/films/{film['id']}", 200)
            return body if body["media_status"] == "ready" else None

        ready = await poll(media_ready, 30, "the media URLs")
        step(
            "S3 -> SNS -> SQS -> upload -> Kafka -> product",
            f"ready after {time.monotonic() - started:.2f}s",
        )
        step("  poster", ready["poster_url"])

        print("3. Booking: showtime, release, seats, order, payment, tickets")
        cinema = await admin.call("GET", f"/v1/cinemas/by-key/{DEMO_CINEMA}", 200)
        showtime = await _free_slot(admin, film["id"], cinema["halls"][0]["name"])
        step(
            "PUT /v1/showtimes/by-key/...", f"showtime {showtime['id']} at {showtime['starts_at']}"
        )
        await admin.call("POST", f"/v1/showtimes/{showtime['id']}/release", 200)
        step(f"POST /v1/showtimes/{showtime['id']}/release", "200 released")

        async def seat_map() -> dict[str, Any] | None:
            async with http.get(f"{gateway}/v1/showtimes/{showtime['id']}/seats") as r:
                return await r.json() if r.status == 200 else None

        seats = await poll(seat_map, 30, "the seat map")
        step(f"GET /v1/showtimes/{showtime['id']}/seats", f"{seats['available']} seats available")
        chosen = [s for s in seats["seats"] if s["label"] in ("F5", "F6")]
        fabs = (await client.call("GET", "/v1/fabs", 200))["items"]
        order = await client.call(
            "POST",
            "/v1/orders",
            201,
            json={
                "showtime_id": showtime["id"],
                "seats": [s["seat_id"] for s in chosen],
                "fabs": [{"fab_id": fabs[0]["id"], "quantity": 2}] if fabs else [],
            },
        )
        step(
            "POST /v1/orders (F5, F6" + (" + 2 " + fabs[0]["name"] if fabs else "") + ")",
            f"201 order {order['id']}, total {order['total']:,} VND, held 10 min",
        )
        payment = await client.call(
            "POST", "/v1/payments", 201, json={"order_id": order["id"], "provider": "vnpay"}
        )
        step("POST /v1/payments (VNPay)", f"201 payment {payment['payment_id']}, URL signed")
        started = time.monotonic()
        async with http.post(
            f"{sandbox}/sandbox/pay",
            json={"payment_url": payment["payment_url"], "outcome": "success"},
        ) as r:
            paid = await r.json()
            if r.status != 200:
                raise DemoError(f"the sandbox gateway answered {r.status}: {paid}")
        step(
            "sandbox gateway: pay, signed IPN, redirect",
            f"IPN answered {paid['ipn_responses'][0]['body']}",
        )

        async def tickets() -> list[dict[str, Any]] | None:
            body = await client.call("GET", f"/v1/orders/{order['id']}/tickets", 200)
            return body["items"] or None

        issued = await poll(tickets, 30, "the tickets")
        step(
            "IPN -> payment -> Kafka -> order: tickets issued",
            f"after {time.monotonic() - started:.2f}s",
        )
        for ticket in issued:
            step(
                f"  ticket {ticket['seat_label']}",
                f"{ticket['code']}  ({gateway}{ticket['qr_url']})",
            )
        print("done: the three flows work end to end.")


def run(settings: StackSettings, url: str | None = None) -> int:
    try:
        asyncio.run(play(settings, url))
    except (DemoError, aiohttp.ClientError) as exc:
        print(f"demo failed: {exc}")
        return 1
    return 0
