"""Duplicates and ordering: after the three flows ran once, every Kafka record they produced is
delivered twice more and out of order, every S3 notification twice more through SQS, and the
IPN three more times; the state of every consuming service must be what one delivery left."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bmt_common.kafka import decode
from bmt_stack.config import HOST, StackSettings
from support import (
    Client,
    Mailbox,
    aws_options,
    drained,
    end_offsets,
    eventually,
    film_form,
    released_showtime,
    seat_ids,
    seat_map,
    sqs_queue_empty,
    tapped_notifications,
)

# topic -> the consumer groups that read it
TOPICS = {
    "bmt_user.public.outboxes": ("bmt-mail",),
    "bmt_showtime.public.outboxes": ("bmt-order",),
    "bmt_order.public.outboxes": ("bmt-mail", "bmt-payment"),
    "bmt_payment.public.outboxes": ("bmt-order",),
    "bmt.media-uploaded": ("bmt-product",),
}
PASSWORD = "correct horse battery"


@dataclass
class Flow:
    email: str = ""
    film_id: int = 0
    showtime_id: int = 0
    orders: list[int] = field(default_factory=list)
    payments: list[int] = field(default_factory=list)
    ipn_query: str = ""  # the signed result the gateway sent as its IPN

    def aggregates(self) -> list[str]:
        ids = [self.film_id, self.showtime_id, *self.orders, *self.payments]
        return [self.email, f"film:{self.film_id}", *map(str, ids)]


async def records_between(
    bootstrap: str, start: dict[TopicPartition, int], end: dict[TopicPartition, int]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record written between two offset snapshots, oldest first."""
    found: list[ConsumerRecord[bytes, bytes]] = []
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        wanted = [tp for tp in end if end[tp] > start.get(tp, 0)]
        reader.assign(wanted)
        for tp in wanted:
            reader.seek(tp, start.get(tp, 0))
        remaining = set(wanted)
        while remaining:
            batches = await reader.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp]:
                        found.append(record)
                if await reader.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    return sorted(found, key=lambda r: r.timestamp)


async def run_the_three_flows(
    flow: Flow,
    admin: Client,
    new_client: Callable[[], Client],
    mailbox: Mailbox,
    http: aiohttp.ClientSession,
    sandbox: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    # 1. Registration, three calls, then sign in.
    customer = new_client()
    flow.email = f"redelivery-{unique}@example.com"
    status, _ = await customer.call("POST", "/v1/auth/register/otp", json={"email": flow.email})
    assert status == 202
    otp = await mailbox.otp(flow.email)
    status, verified = await customer.call(
        "POST", "/v1/auth/register/verify", json={"email": flow.email, "otp": otp}
    )
    assert status == 200, verified
    status, account = await customer.call(
        "POST",
        "/v1/auth/register/complete",
        json={
            "verification_token": verified["verification_token"],
            "password": PASSWORD,
            "name": "Redelivery",
            "birthday": "1995-04-12",
            "sex": "female",
        },
    )
    assert status == 201, account
    status, tokens = await customer.call(
        "POST", "/v1/auth/login", json={"email": flow.email, "password": PASSWORD}
    )
    assert status == 200, tokens
    customer.token = tokens["access_token"]
    # 2. Media: a film with poster and trailer; wait for both URLs.
    form = film_form(title=f"Redelivered {unique}")
    status, film = await admin.call("POST", "/v1/films", data=form)
    assert status == 201, film
    flow.film_id = film["id"]

    async def media_ready() -> bool | None:
        _, body = await customer.call("GET", f"/v1/films/{flow.film_id}")
        return True if body.get("media_status") == "ready" else None

    await eventually(media_ready, 30, "the film's media URLs")
    # 3. Booking: one order paid (tickets), one left to expire (its seats freed).
    showtime = await released_showtime(admin, unique)
    flow.showtime_id = showtime["id"]
    seats = await seat_map(customer, flow.showtime_id)
    for labels in (("B1", "B2"), ("A1",)):
        status, order = await customer.call(
            "POST",
            "/v1/orders",
            json={"showtime_id": flow.showtime_id, "seats": seat_ids(seats, *labels)},
        )
        assert status == 201, order
        flow.orders.append(order["id"])
    status, payment = await customer.call(
        "POST", "/v1/payments", json={"order_id": flow.orders[0], "provider": "vnpay"}
    )
    assert status == 201, payment
    flow.payments.append(payment["payment_id"])
    async with http.post(
        f"{sandbox}/sandbox/pay",
        json={"payment_url": payment["payment_url"], "outcome": "success"},
    ) as response:
        paid = await response.json()
    assert paid["ipn_responses"][0]["body"]["RspCode"] == "00", paid
    flow.ipn_query = urlsplit(paid["return_url"]).query
    conn = await db("bmt_order")
    try:  # the unpaid order's ten minutes pass
        await conn.execute(
            "UPDATE seats SET held_until = now() - interval '1 second' WHERE order_id = $1",
            flow.orders[1],
        )
        await conn.execute(
            "UPDATE orders SET expires_at = now() - interval '1 second' WHERE id = $1",
            flow.orders[1],
        )
    finally:
        await conn.close()

    async def settled() -> bool | None:
        statuses = []
        for order_id in flow.orders:
            _, body = await customer.call("GET", f"/v1/orders/{order_id}")
            statuses.append(body["status"])
        _, tickets = await customer.call("GET", f"/v1/orders/{flow.orders[0]}/tickets")
        done = statuses == ["confirmed", "expired"] and len(tickets["items"]) == 2
        return True if done else None

    await eventually(settled, 60, "the paid order ticketed and the other expired")


async def state(
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    mailbox: Mailbox,
    flow: Flow,
    event_ids: list[str],
) -> dict[str, Any]:
    """Every row the consuming services keep about the flow, as JSON."""
    queries: dict[str, list[tuple[str, Any]]] = {
        "bmt_mail": [("SELECT to_jsonb(m) FROM sent_mails m WHERE recipient = $1", flow.email)],
        "bmt_product": [
            ("SELECT to_jsonb(f) FROM films f WHERE id = $1", flow.film_id),
            ("SELECT to_jsonb(m) FROM media m WHERE key LIKE $1", f"films/{flow.film_id}/%"),
        ],
        "bmt_order": [
            ("SELECT to_jsonb(s) FROM showtimes s WHERE id = $1", flow.showtime_id),
            ("SELECT to_jsonb(s) FROM seats s WHERE showtime_id = $1", flow.showtime_id),
            ("SELECT to_jsonb(o) FROM orders o WHERE showtime_id = $1", flow.showtime_id),
            ("SELECT to_jsonb(t) FROM tickets t WHERE showtime_id = $1", flow.showtime_id),
        ],
        "bmt_payment": [
            ("SELECT to_jsonb(o) FROM orders o WHERE id = any($1::bigint[])", flow.orders),
            ("SELECT to_jsonb(p) FROM payments p WHERE order_id = any($1::bigint[])", flow.orders),
            (
                "SELECT to_jsonb(c) FROM gateway_callbacks c WHERE transaction_no IN"
                " (SELECT transaction_no FROM payments WHERE order_id = any($1::bigint[]))",
                flow.orders,
            ),
        ],
    }
    found: dict[str, Any] = {}
    for database, selects in queries.items():
        conn = await db(database)
        try:
            for sql, arg in selects:
                rows = [json.loads(r[0]) for r in await conn.fetch(sql, arg)]
                found[sql] = sorted(rows, key=json.dumps)
            # What each consumer recorded as applied, and the events it emitted in reaction.
            found[f"{database} applied"] = await conn.fetchval(
                "SELECT count(*) FROM applied_events WHERE event_id = any($1)", event_ids
            )
            found[f"{database} outbox"] = await conn.fetchval(
                "SELECT count(*) FROM outboxes WHERE aggregate_id = any($1)", flow.aggregates()
            )
        finally:
            await conn.close()
    found["mails"] = len(await mailbox.messages(flow.email))
    return found


async def test_every_message_of_the_three_flows_delivered_again_changes_nothing(
    admin: Client,
    new_client: Callable[[], Client],
    mailbox: Mailbox,
    http: aiohttp.ClientSession,
    gateway: str,
    bmt_platform: StackSettings,
    kafka_bootstrap: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    figure: Callable[[str], None],
    unique: str,
) -> None:
    flow, sandbox = Flow(), f"http://{HOST}:{bmt_platform.port_sandbox}"
    start = await end_offsets(kafka_bootstrap, *TOPICS)
    async with tapped_notifications(bmt_platform, unique) as tap:
        await run_the_three_flows(flow, admin, new_client, mailbox, http, sandbox, unique, db)
        notifications: list[str] = []

        async def both_notifications() -> bool | None:
            notifications.extend(await tap())
            return True if len(notifications) >= 2 else None

        await eventually(both_notifications, 30, "the poster's and trailer's notifications")
    for topic, groups in TOPICS.items():
        for group in groups:
            await drained(kafka_bootstrap, group, topic)
    end = await end_offsets(kafka_bootstrap, *TOPICS)
    records = await records_between(kafka_bootstrap, start, end)
    ids = sorted({d.event_id for r in records if (d := decode(r)) is not None})
    before = await state(db, mailbox, flow, ids)

    # Everything again: IPNs first (before the Kafka records they once caused), then every
    # record twice (reversed, then shuffled), and the notifications twice, in reverse.
    ipn = f"{gateway}/v1/payments/vnpay/ipn?{flow.ipn_query}"
    for _ in range(3):
        async with http.get(ipn) as response:
            answer = await response.json()
        assert answer["RspCode"] == "02", answer  # "already confirmed": changes nothing
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        shuffled = records[:]
        random.Random(7).shuffle(shuffled)
        for record in [*reversed(records), *shuffled]:
            await producer.send_and_wait(record.topic, record.value, key=record.key)
    finally:
        await producer.stop()
    session = aioboto3.Session()
    async with session.client("sqs", **aws_options(bmt_platform)) as sqs:
        queue = (await sqs.get_queue_url(QueueName="bmt-media-uploads"))["QueueUrl"]
        for body in [*reversed(notifications), *reversed(notifications)]:
            await sqs.send_message(QueueUrl=queue, MessageBody=body)

        await eventually(
            lambda: sqs_queue_empty(sqs, queue), 30, "the upload service taking the notifications"
        )
    for topic, groups in TOPICS.items():
        for group in groups:
            await drained(kafka_bootstrap, group, topic)
    after = await state(db, mailbox, flow, ids)
    figure(
        f"\n[redelivery] {len(records)} Kafka records of the three flows delivered twice more"
        f" (reversed, then shuffled), {len(notifications)} S3 notifications twice more,"
        f" the IPN three more times: {'state unchanged' if after == before else 'STATE CHANGED'}"
    )
    assert after == before
