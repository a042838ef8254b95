"""Flow 3's second half through the gateway: payment URL, the sandbox gateway's IPN, tickets,
and what must not work: forged or changed IPNs, replays, late payments, second check-ins."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from bmt_stack.config import HOST, StackSettings
from support import Client, Mailbox, eventually, released_showtime, seat_ids, seat_map


@pytest.fixture
def sandbox(bmt_platform: StackSettings) -> str:
    return f"http://{HOST}:{bmt_platform.port_sandbox}"


async def pay(
    http: aiohttp.ClientSession, sandbox: str, payment_url: str, **options: Any
) -> dict[str, Any]:
    async with http.post(
        f"{sandbox}/sandbox/pay", json={"payment_url": payment_url, **options}
    ) as r:
        body = await r.json()
        assert r.status == 200, body
        return dict(body)


async def booked(
    admin: Client, customer: Client, unique: str, labels: tuple[str, ...] = ("B4", "B5")
) -> dict[str, Any]:
    showtime = await released_showtime(admin, unique)
    seats = seat_ids(await seat_map(customer, showtime["id"]), *labels)
    status, order = await customer.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    assert status == 201, order
    return dict(order)


async def tickets(customer: Client, order_id: int) -> list[dict[str, Any]]:
    async def issued() -> list[dict[str, Any]] | None:
        status, body = await customer.call("GET", f"/v1/orders/{order_id}/tickets")
        assert status == 200, body
        return list(body["items"]) or None

    return await eventually(issued, 30, f"the tickets of order {order_id}")


async def test_pay_and_receive_the_tickets(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    sandbox: str,
    mailbox: Mailbox,
    kafka_bootstrap: str,
    unique: str,
) -> None:
    customer = await make_user()
    order = await booked(admin, customer, unique)
    status, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay"}
    )
    assert status == 201, payment
    assert payment["amount"] == order["total"]
    assert f"vnp_Amount={order['total'] * 100}" in payment["payment_url"]
    paid = await pay(http, sandbox, payment["payment_url"], outcome="success")
    assert paid["ipn_responses"][0]["body"] == {"RspCode": "00", "Message": "Confirm Success"}
    issued = await tickets(customer, order["id"])
    assert sorted(t["seat_label"] for t in issued) == ["B4", "B5"]
    _, confirmed = await customer.call("GET", f"/v1/orders/{order['id']}")
    assert confirmed["status"] == "confirmed"
    seats = await seat_map(customer, order["showtime_id"])
    assert seats["sold"] == 2
    async with customer.http.get(
        customer.base + issued[0]["qr_url"], headers=customer.headers()
    ) as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"\x89PNG")
    # The browser's return page answers from the IPN's state, and points at the tickets.
    status, returned = await customer.call("GET", "/" + paid["return_url"].split("/", 3)[3])
    assert status == 200, returned
    assert returned["status"] == "succeeded"
    # The events of both outboxes are on their topics.
    for topic, wanted in (
        ("bmt_order.public.outboxes", {"order_created", "order_confirmed"}),
        ("bmt_payment.public.outboxes", {"payment_succeeded"}),
    ):
        assert wanted <= await event_types(kafka_bootstrap, topic, str(order["id"]), len(wanted))


async def event_types(bootstrap: str, topic: str, aggregate_id: str, count: int) -> set[str]:
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await reader.start()
    found: set[str] = set()
    try:

        async def enough() -> set[str] | None:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                for record in batch:
                    after = json.loads(record.value).get("after") or {}
                    if after.get("aggregate_id") == aggregate_id:
                        found.add(after["event_type"])
            return found if len(found) >= count else None

        return await eventually(enough, 30, f"{count} events of {aggregate_id} on {topic}")
    finally:
        await reader.stop()


async def test_a_replayed_ipn_changes_nothing(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    sandbox: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    customer = await make_user()
    order = await booked(admin, customer, unique)
    _, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay"}
    )
    paid = await pay(http, sandbox, payment["payment_url"], outcome="success", ipn_copies=3)
    answers = [r["body"]["RspCode"] for r in paid["ipn_responses"]]
    assert answers == ["00", "02", "02"]
    assert len(await tickets(customer, order["id"])) == 2
    conn = await db("bmt_order")
    try:
        count = await conn.fetchval("SELECT count(*) FROM tickets WHERE order_id = $1", order["id"])
    finally:
        await conn.close()
    assert count == 2


@pytest.mark.parametrize(("tamper", "code"), [("signature", "97"), ("amount", "97")])
async def test_a_forged_or_changed_ipn_is_refused(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    sandbox: str,
    unique: str,
    tamper: str,
    code: str,
) -> None:
    customer = await make_user()
    order = await booked(admin, customer, unique)
    _, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay"}
    )
    async with http.post(
        f"{sandbox}/sandbox/ipn/vnpay",
        json={"payment_url": payment["payment_url"], "outcome": "success", "tamper": tamper},
    ) as r:
        answer = await r.json()
    assert answer["body"]["RspCode"] == code, answer
    status, still = await customer.call("GET", f"/v1/payments/{payment['payment_id']}")
    assert status == 200
    assert still["status"] == "created"
    _, unchanged = await customer.call("GET", f"/v1/orders/{order['id']}")
    assert unchanged["status"] == "pending"


async def test_the_amount_comes_from_the_order(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> None:
    customer = await make_user()
    order = await booked(admin, customer, unique)
    status, problem = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay", "amount": 1}
    )
    assert status == 422
    assert problem["errors"][0]["field"] == "amount"


async def test_someone_elses_order_cannot_be_paid(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> None:
    owner, other = await make_user(), await make_user()
    order = await booked(admin, owner, unique)
    status, _ = await other.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay"}
    )
    assert status == 404


async def test_a_late_payment_is_marked_for_refund(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    sandbox: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    customer = await make_user()
    order = await booked(admin, customer, unique)
    _, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "vnpay"}
    )
    conn = await db("bmt_order")
    try:  # the client dawdles on the pay page past the hold
        await conn.execute(
            "UPDATE seats SET held_until = now() - interval '1 second' WHERE order_id = $1",
            order["id"],
        )
        await conn.execute(
            "UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1", order["id"]
        )
    finally:
        await conn.close()

    async def expired() -> bool | None:
        _, body = await customer.call("GET", f"/v1/orders/{order['id']}")
        return True if body["status"] == "expired" else None

    await eventually(expired, 30, "the order expiring")
    paid = await pay(http, sandbox, payment["payment_url"], outcome="success")
    assert paid["ipn_responses"][0]["body"]["RspCode"] == "00"  # recorded, not dropped

    async def refunded() -> dict[str, Any] | None:
        _, body = await customer.call("GET", f"/v1/payments/{payment['payment_id']}")
        return dict(body) if body["status"] == "refunded" else None

    await eventually(refunded, 30, "the refund of the late payment")
    async with http.get(f"{sandbox}/sandbox/refunds") as r:
        refunds = await r.json()
    assert any(str(payment["payment_id"]) in json.dumps(item) for item in refunds["items"]), refunds
    _, after = await customer.call("GET", f"/v1/orders/{order['id']}/tickets")
    assert after["items"] == []


async def test_a_ticket_checks_in_once(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    sandbox: str,
    unique: str,
) -> None:
    customer, staff = await make_user(), await make_user("staff")
    order = await booked(admin, customer, unique, labels=("A3",))
    _, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": order["id"], "provider": "momo"}
    )
    await pay(http, sandbox, payment["payment_url"], outcome="success")
    [ticket] = await tickets(customer, order["id"])
    status, problem = await customer.call(
        "POST", "/v1/tickets/check-in", json={"code": ticket["code"]}
    )
    assert status == 403
    status, checked = await staff.call(
        "POST", "/v1/tickets/check-in", json={"code": ticket["code"]}
    )
    assert status == 200, checked
    assert checked["seat_label"] == "A3"
    status, problem = await staff.call(
        "POST", "/v1/tickets/check-in", json={"code": ticket["code"]}
    )
    assert status == 409
    assert "already checked in" in problem["detail"]
    forged = ticket["code"][:-2] + ("AA" if not ticket["code"].endswith("AA") else "BB")
    status, problem = await staff.call("POST", "/v1/tickets/check-in", json={"code": forged})
    assert status == 422
    assert problem["detail"] == "This is not a valid ticket code"
