"""The invariants a fault must not break, read from the services' own databases.

Each check returns what it found broken (an empty list when the invariant holds), so a test
can poll them until the platform has caught up and report exactly what did not.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from chaos.load import Shop, ready

Connect = Callable[[str], Awaitable[asyncpg.Connection]]

# database -> {source database: the outbox event types it consumes}; a consumer records each
# applied event in its `applied_events`, in the transaction of the effect.
CONSUMERS: dict[str, dict[str, tuple[str, ...]]] = {
    "bmt_mail": {
        "bmt_user": ("otp_requested", "user_registered"),
        "bmt_order": ("order_confirmed",),
    },
    "bmt_order": {
        "bmt_showtime": ("showtime_released", "showtime_cancelled"),
        "bmt_payment": ("payment_succeeded",),
    },
    "bmt_payment": {"bmt_order": ("order_created", "order_closed", "order_confirmation_failed")},
}
SOURCES = sorted({source for sources in CONSUMERS.values() for source in sources})


async def query(connect: Connect, database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await connect(database)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def outbox_marks(connect: Connect) -> dict[str, int]:
    """The last outbox id of every source: events after it belong to the case."""
    marks = {}
    for source in SOURCES:
        rows = await query(connect, source, "SELECT coalesce(max(id), 0) AS id FROM outboxes")
        marks[source] = rows[0]["id"]
    return marks


async def orders_kept(connect: Connect, shop: Shop) -> list[str]:
    rows = await query(
        connect,
        "bmt_order",
        "SELECT id FROM orders WHERE id = any($1::bigint[])",
        shop.tally.acknowledged,
    )
    lost = set(shop.tally.acknowledged) - {r["id"] for r in rows}
    return [f"acknowledged orders missing: {sorted(lost)}"] if lost else []


async def paid_orders_ticketed(connect: Connect, shop: Shop) -> list[str]:
    """Every order the payment service took money for is confirmed with one ticket per seat."""
    paid = await query(
        connect,
        "bmt_payment",
        "SELECT DISTINCT order_id FROM payments WHERE status = 'succeeded'"
        " AND order_id = any($1::bigint[])",
        shop.tally.acknowledged,
    )
    paid_ids = [r["order_id"] for r in paid]
    broken = [
        f"paid per the client but no succeeded payment: {o}"
        for o in sorted(set(shop.tally.paid) - set(paid_ids))
    ]
    rows = await query(
        connect,
        "bmt_order",
        "SELECT o.id, o.status,"
        " (SELECT count(*) FROM order_seats s WHERE s.order_id = o.id) AS seats,"
        " (SELECT count(*) FROM tickets t WHERE t.order_id = o.id) AS tickets"
        " FROM orders o WHERE o.id = any($1::bigint[])",
        paid_ids,
    )
    broken += [
        f"order {r['id']} is {r['status']} with {r['tickets']} tickets for {r['seats']} seats"
        for r in rows
        if r["status"] != "confirmed" or r["tickets"] != r["seats"]
    ]
    return broken


async def events_applied_once(connect: Connect, marks: dict[str, int]) -> list[str]:
    broken = []
    for consumer, sources in CONSUMERS.items():
        for source, types in sources.items():
            produced = await query(
                connect,
                source,
                "SELECT id::text AS id FROM outboxes WHERE id > $1 AND event_type = any($2)",
                marks[source],
                list(types),
            )
            ids = [r["id"] for r in produced]
            applied = await query(
                connect,
                consumer,
                "SELECT event_id, count(*) AS n FROM applied_events"
                " WHERE source = $1 AND event_id = any($2) GROUP BY event_id",
                f"{source}.public.outboxes",
                ids,
            )
            counts = {r["event_id"]: r["n"] for r in applied}
            wrong = [i for i in ids if counts.get(i) != 1]
            if wrong:
                broken.append(
                    f"{consumer} applied {len(wrong)} {source} events not once: {wrong[:5]}"
                )
    return broken


async def codes_mailed_once(connect: Connect, shop: Shop) -> list[str]:
    rows = await query(
        connect,
        "bmt_mail",
        "SELECT recipient, count(*) AS n FROM sent_mails WHERE recipient = any($1)"
        " GROUP BY recipient",
        shop.tally.emails,
    )
    counts = {r["recipient"]: r["n"] for r in rows}
    wrong = [e for e in shop.tally.emails if counts.get(e) != 1]
    return [f"{len(wrong)} OTP mails not sent exactly once: {wrong[:3]}"] if wrong else []


async def media_stored(shop: Shop, since: float | None = None) -> list[str]:
    """Every acknowledged upload has both URLs; `since` skips uploads acknowledged earlier."""
    missing = []
    for film_id, acknowledged in shop.tally.films:
        if since is not None and acknowledged < since:
            continue
        status, film = await shop.admin.call("GET", f"/v1/films/{film_id}")
        if status != 200 or film.get("media_status") != "ready":
            missing.append(film_id)
    return [f"films without their media URLs: {missing[:5]}"] if missing else []


async def resources_ready(shop: Shop) -> list[str]:
    listed = await asyncio.to_thread(
        shop.kube.run, "get", "showtimes", "-n", shop.namespace, "-o", "json", check=False
    )
    if listed.returncode != 0:
        return [f"kubectl get showtimes: {listed.stderr.strip()}"]
    items = json.loads(listed.stdout)["items"]
    not_ready = [i["metadata"]["name"] for i in items if not ready(i)]
    applied = {i["metadata"]["name"] for i in items}
    lost = [n for n in shop.tally.showtimes if n not in applied]
    return [f"showtimes not Ready: {not_ready}"] * bool(not_ready) + [
        f"showtimes lost: {lost}"
    ] * bool(lost)


async def expire_holds(connect: Connect, shop: Shop) -> None:
    """The unpaid orders' ten minutes pass; the sweeper must expire them and free their seats."""
    conn = await connect("bmt_order")
    try:
        await conn.execute(
            "UPDATE seats SET held_until = now() - interval '1 second'"
            " WHERE showtime_id = $1 AND status = 'held'",
            shop.showtime_id,
        )
        await conn.execute(
            "UPDATE orders SET expires_at = now() - interval '1 second'"
            " WHERE showtime_id = $1 AND status = 'pending'",
            shop.showtime_id,
        )
    finally:
        await conn.close()


async def holds_freed(connect: Connect, shop: Shop) -> list[str]:
    rows = await query(
        connect,
        "bmt_order",
        "SELECT (SELECT count(*) FROM orders WHERE showtime_id = $1 AND status = 'pending')"
        " AS pending,"
        " (SELECT count(*) FROM seats WHERE showtime_id = $1 AND status = 'held') AS held,"
        " (SELECT count(*) FROM seats s JOIN orders o ON o.id = s.order_id"
        "  WHERE s.showtime_id = $1 AND o.status <> 'confirmed') AS kept_by_unpaid",
        shop.showtime_id,
    )
    found = rows[0]
    return (
        [f"after expiry: {dict(found)}"]
        if found["pending"] or found["held"] or found["kept_by_unpaid"]
        else []
    )


async def seats_sold_once(connect: Connect, shop: Shop) -> list[str]:
    rows = await query(
        connect,
        "bmt_order",
        "SELECT (SELECT count(*) FROM (SELECT seat_id FROM tickets WHERE showtime_id = $1"
        "  GROUP BY seat_id HAVING count(*) > 1) twice) AS twice,"
        " (SELECT count(*) FROM seats WHERE showtime_id = $1 AND status = 'sold') AS sold,"
        " (SELECT count(*) FROM tickets WHERE showtime_id = $1) AS tickets",
        shop.showtime_id,
    )
    found = rows[0]
    if found["twice"] or found["sold"] != found["tickets"]:
        return [f"seats: {dict(found)}"]
    return []
