"""Flow 3 through the gateway: cinemas, showtimes, release, seat maps and holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from support import Client, eventually, released_showtime, seat_ids, seat_map


async def test_a_showtime_ends_after_its_film_and_the_cleaning(admin: Client, unique: str) -> None:
    showtime = await released_showtime(admin, unique)
    starts = dt.datetime.fromisoformat(showtime["starts_at"])
    ends = dt.datetime.fromisoformat(showtime["ends_at"])
    assert ends - starts == dt.timedelta(minutes=100 + 15)


async def test_overlapping_and_past_showtimes_are_refused(admin: Client, unique: str) -> None:
    showtime = await released_showtime(admin, unique)
    starts = dt.datetime.fromisoformat(showtime["starts_at"]) + dt.timedelta(minutes=110)
    body = {
        "film_id": showtime["film_id"],
        "hall_id": showtime["hall_id"],
        "starts_at": starts.isoformat(),
    }
    status, problem = await admin.call("POST", "/v1/showtimes", json=body)
    assert status == 409
    assert f"taken by showtime {showtime['id']}" in problem["detail"]
    past = {**body, "starts_at": "2020-01-01T10:00:00+07:00"}
    status, problem = await admin.call("POST", "/v1/showtimes", json=past)
    assert status == 422
    assert problem["detail"] == "A showtime cannot start in the past"


async def test_release_publishes_the_seat_map(admin: Client, client: Client, unique: str) -> None:
    showtime = await released_showtime(admin, unique)
    seats = await seat_map(client, showtime["id"])
    assert (seats["available"], seats["held"], seats["sold"]) == (17, 0, 0)  # 18 seats, A8 blocked
    by_label = {s["label"]: s for s in seats["seats"]}
    assert "A8" not in by_label
    assert (by_label["A1"]["price"], by_label["B1"]["seat_type"]) == (90_000, "vip")
    assert by_label["C1"]["pair_seat_id"] == by_label["C2"]["seat_id"]


async def test_booking_holds_seats_and_prices_the_order(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> None:
    showtime = await released_showtime(admin, unique)
    fab_status, popcorn = await admin.call(
        "POST", "/v1/fabs", data={"name": "Popcorn", "kind": "food", "price": "45000"}
    )
    assert fab_status == 201
    customer = await make_user()
    seats = await seat_map(customer, showtime["id"])
    status, order = await customer.call(
        "POST",
        "/v1/orders",
        json={
            "showtime_id": showtime["id"],
            "seats": seat_ids(seats, "A1", "B1"),
            "fabs": [{"fab_id": popcorn["id"], "quantity": 3}],
        },
    )
    assert status == 201, order
    assert order["status"] == "pending"
    assert (order["seats_total"], order["fabs_total"]) == (90_000 + 120_000, 3 * 45_000)
    assert order["total"] == 345_000
    hold = dt.datetime.fromisoformat(order["expires_at"]) - dt.datetime.fromisoformat(
        order["created_at"]
    )
    assert dt.timedelta(minutes=9, seconds=59) < hold <= dt.timedelta(minutes=10)
    after = await seat_map(customer, showtime["id"])
    assert after["held"] == 2


@pytest.mark.parametrize(
    ("labels", "detail"),
    [
        (["C1"], "Couple seat C1 is sold with C2"),
        (
            [f"A{i}" for i in range(1, 8)] + ["B1", "B2", "B3", "B4"],
            "The body is invalid: seats: List should have at most 10 items after validation,"
            " not 11",
        ),
    ],
)
async def test_seat_rules(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    unique: str,
    labels: list[str],
    detail: str,
) -> None:
    showtime = await released_showtime(admin, unique)
    customer = await make_user()
    seats = await seat_map(customer, showtime["id"])
    status, problem = await customer.call(
        "POST",
        "/v1/orders",
        json={"showtime_id": showtime["id"], "seats": seat_ids(seats, *labels)},
    )
    assert status == 422
    assert problem["detail"] == detail


async def test_fifty_concurrent_clients_never_share_a_seat(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    showtime = await released_showtime(admin, unique)
    customers = await asyncio.gather(*(make_user() for _ in range(10)))
    seats = await seat_map(customers[0], showtime["id"])
    contested = seat_ids(seats, "A1", "A2", "A3", "A4", "A5", "A6")
    rng = random.Random(7)
    wanted = [sorted(rng.sample(contested, rng.randint(1, 4))) for _ in range(50)]
    results = await asyncio.gather(
        *(
            customers[i % 10].call(
                "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats_wanted}
            )
            for i, seats_wanted in enumerate(wanted)
        )
    )
    won = [body for status, body in results if status == 201]
    lost = [body for status, body in results if status == 409]
    assert len(won) + len(lost) == 50, [r for r in results if r[0] not in (201, 409)]
    sold_to: dict[int, int] = {}
    for order in won:
        for seat in order["seats"]:
            assert seat["seat_id"] not in sold_to, "a seat was held twice"
            sold_to[seat["seat_id"]] = order["id"]
    for problem in lost:
        assert problem["detail"].startswith("Seats ")
        assert problem["taken"], problem
    # The database agrees: each contested seat is held by at most one order, that order.
    conn = await db("bmt_order")
    try:
        rows = await conn.fetch(
            "SELECT seat_id, order_id FROM seats WHERE showtime_id = $1 AND status = 'held'",
            showtime["id"],
        )
    finally:
        await conn.close()
    assert {r["seat_id"]: r["order_id"] for r in rows} == sold_to


async def test_an_expired_hold_is_free_at_once_and_the_order_expires(
    admin: Client,
    make_user: Callable[..., Awaitable[Client]],
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    showtime = await released_showtime(admin, unique)
    first, second = await make_user(), await make_user()
    seats = seat_ids(await seat_map(first, showtime["id"]), "B2", "B3")
    _, order = await first.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    status, _ = await second.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    assert status == 409
    conn = await db("bmt_order")
    try:  # ten minutes pass
        await conn.execute(
            "UPDATE seats SET held_until = now() - interval '1 second' WHERE order_id = $1",
            order["id"],
        )
        await conn.execute(
            "UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1", order["id"]
        )
    finally:
        await conn.close()
    status, taken_over = await second.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    assert status == 201, taken_over

    async def expired() -> bool | None:
        _, body = await first.call("GET", f"/v1/orders/{order['id']}")
        return True if body["status"] == "expired" else None

    await eventually(expired, 30, "the sweeper expiring the first order")
    after = await seat_map(second, showtime["id"])
    held = {s["seat_id"] for s in after["seats"] if s["status"] == "held"}
    assert held == set(seats)  # still the second buyer's


async def test_cancel_frees_the_seats(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> None:
    showtime = await released_showtime(admin, unique)
    customer = await make_user()
    seats = seat_ids(await seat_map(customer, showtime["id"]), "A5")
    _, order = await customer.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    status, cancelled = await customer.call("POST", f"/v1/orders/{order['id']}/cancel")
    assert status == 200
    assert cancelled["status"] == "cancelled"
    status, problem = await customer.call("POST", f"/v1/orders/{order['id']}/cancel")
    assert status == 409
    assert (
        problem["detail"]
        == f"Order {order['id']} is cancelled; only a pending order can be cancelled"
    )
    assert (await seat_map(customer, showtime["id"]))["held"] == 0


async def test_a_customer_cannot_read_another_customers_order(
    admin: Client, make_user: Callable[..., Awaitable[Client]], unique: str
) -> None:
    showtime = await released_showtime(admin, unique)
    owner, other = await make_user(), await make_user()
    seats = seat_ids(await seat_map(owner, showtime["id"]), "A6")
    _, order = await owner.call(
        "POST", "/v1/orders", json={"showtime_id": showtime["id"], "seats": seats}
    )
    assert (await other.call("GET", f"/v1/orders/{order['id']}"))[0] == 404
    assert (await other.call("POST", f"/v1/orders/{order['id']}/cancel"))[0] == 404
    _, mine = await other.call("GET", "/v1/orders")
    assert order["id"] not in [o["id"] for o in mine["items"]]
    assert (await admin.call("GET", f"/v1/orders/{order['id']}"))[0] == 200
