"""Event latency of the three asynchronous paths, each timed by the database clock where both
ends are recorded, over many iterations."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aiohttp

from bmt_bench.common import percentile
from bmt_bench.platform import Platform
from bmt_stack.config import HOST

PNG = b"\x89PNG\r\n\x1a\n" + bytes(256)
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(1024)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50) * 1000, 1),
        "p99_ms": round(percentile(samples, 99) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1) if samples else 0.0,
    }


async def _poll(probe: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    raise RuntimeError("an event did not arrive in time")


async def otp_to_mail(platform: Platform, iterations: int) -> dict[str, float]:
    """From the outbox row of `otp_requested` to the mail service's record of SES's answer."""
    users, mails = await platform.database("bmt_user"), await platform.database("bmt_mail")
    samples: list[float] = []
    try:
        for _ in range(iterations):
            email = f"bench-{secrets.token_hex(6)}@example.com"
            await platform.call(
                "POST", f"{platform.url('user')}/v1/auth/register/otp", json={"email": email}
            )

            async def sent(email: str = email) -> float | None:
                row = await mails.fetchval(
                    "SELECT sent_at FROM sent_mails WHERE recipient = $1", email
                )
                if row is None:
                    return None
                created = await users.fetchval(
                    "SELECT created_at FROM outboxes WHERE aggregate_id = $1", email
                )
                return float((row - created).total_seconds())

            samples.append(await _poll(sent))
    finally:
        await users.close()
        await mails.close()
    return summary(samples)


async def upload_to_url(platform: Platform, iterations: int) -> dict[str, float]:
    """From the admin's upload request to both media URLs stored by the product service."""
    products = await platform.database("bmt_product")
    samples: list[float] = []
    try:
        for i in range(iterations):
            form = aiohttp.FormData()
            for name, value in (
                ("title", f"Bench media {i}"),
                ("release_date", "2026-12-01"),
                ("duration_minutes", "90"),
                ("age_rating", "P"),
            ):
                form.add_field(name, value)
            form.add_field("poster", PNG, filename="p.png", content_type="image/png")
            form.add_field("trailer", MP4, filename="t.mp4", content_type="video/mp4")
            started = time.monotonic()
            film = await platform.call(
                "POST", f"{platform.url('product')}/v1/films", platform.admin_token, data=form
            )

            async def stored(film_id: int = film["id"]) -> bool | None:
                count = await products.fetchval(
                    "SELECT count(*) FROM media WHERE owner = 'film' AND owner_id = $1", film_id
                )
                return True if count == 2 else None

            await _poll(stored)
            samples.append(time.monotonic() - started)
    finally:
        await products.close()
    return summary(samples)


async def ipn_to_tickets(platform: Platform, iterations: int) -> dict[str, float]:
    """From the payment service's receipt of the IPN to the tickets the order service issued."""
    showtime_id, seat_ids = await platform.showtime(max(50, iterations))
    [token] = await platform.customers(1)
    payments, orders = await platform.database("bmt_payment"), await platform.database("bmt_order")
    sandbox = f"http://{HOST}:{platform.settings.port_sandbox}"
    samples: list[float] = []
    try:
        for i in range(iterations):
            order = await platform.call(
                "POST",
                f"{platform.gateway}/v1/orders",
                token,
                json={"showtime_id": showtime_id, "seats": [seat_ids[i]]},
            )
            payment = await platform.call(
                "POST",
                f"{platform.gateway}/v1/payments",
                token,
                json={"order_id": order["id"], "provider": "vnpay"},
            )
            await platform.call(
                "POST",
                f"{sandbox}/sandbox/pay",
                json={"payment_url": payment["payment_url"], "outcome": "success"},
            )

            async def issued(
                order_id: int = order["id"], payment_id: int = payment["payment_id"]
            ) -> float | None:
                issued_at = await orders.fetchval(
                    "SELECT min(issued_at) FROM tickets WHERE order_id = $1", order_id
                )
                if issued_at is None:
                    return None
                received = await payments.fetchval(
                    "SELECT min(received_at) FROM gateway_callbacks WHERE payment_id = $1",
                    payment_id,
                )
                return float((issued_at - received).total_seconds())

            samples.append(await _poll(issued))
    finally:
        await payments.close()
        await orders.close()
    return summary(samples)
