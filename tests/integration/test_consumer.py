"""The one consumer loop: each event applied once, unknown and malformed ones skipped (and
committed past), failures retried."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bmt_common.db import Connection
from bmt_common.events import OtpRequested
from bmt_common.kafka import Consumer
from bmt_mail.app import MIGRATIONS
from integration.conftest import Scratch
from support import eventually


def change_event(row_id: int, event_type: str, payload: dict[str, Any]) -> bytes:
    """A Debezium change event of an outbox row, as Connect's JSON converter writes it."""
    after = {
        "id": row_id,
        "aggregate_type": "email",
        "aggregate_id": "x",
        "event_type": event_type,
        "event_version": 1,
        "payload": json.dumps(payload),
        "created_at": "2026-01-01T00:00:00Z",
    }
    return json.dumps({"before": None, "after": after, "op": "c", "source": {}}).encode()


OTP = {
    "email": "a@b.co",
    "otp": "123456",
    "purpose": "registration",
    "expires_at": "2030-01-01T00:00:00Z",
}


async def test_each_event_is_applied_once(
    scratch_database: Scratch, postgres_dsn: str, kafka_bootstrap: str, unique: str
) -> None:
    topic = f"t-consumer-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    async with scratch_database(MIGRATIONS) as conn:
        database = await conn.fetchval("SELECT current_database()")
        pool = await asyncpg.create_pool(
            postgres_dsn.format(database=database), min_size=1, max_size=2
        )
        seen: list[str] = []
        failures = [1]  # the first attempt at event 3 fails, as if the database blinked

        async def on_otp(tx: Connection, event: OtpRequested) -> None:
            assert tx.is_in_transaction()
            if event.otp == "333333" and failures:
                failures.pop()
                raise ConnectionError("transient")
            seen.append(event.otp)

        group = f"g-{unique}"
        consumer = Consumer(
            bootstrap=kafka_bootstrap,
            group_id=group,
            topics=[topic],
            pool=pool,
            handlers={OtpRequested: on_otp},
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        for value in (
            change_event(1, "otp_requested", {**OTP, "otp": "111111"}),
            change_event(1, "otp_requested", {**OTP, "otp": "111111"}),  # duplicate delivery
            change_event(2, "film_rated", {"stars": 5}),  # a type nobody knows
            change_event(4, "otp_requested", {"email": "no otp"}),  # does not match its model
            b"not json at all",
            # JSON, but not an event: these raised and were retried forever, stalling the rest.
            b"123",
            b'["op", "c"]',
            json.dumps({"op": "c", "after": [1, 2]}).encode(),
            raw_change_event(5, "otp_requested", "{not json"),
            None,  # a tombstone
            change_event(3, "otp_requested", {**OTP, "otp": "333333"}),
            change_event(6, "film_rated", {"stars": 1}),  # skipped last: committed past too
        ):
            await producer.send_and_wait(topic, value, key=b"x")
        await producer.stop()
        task = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _done(seen), 30, "both events applied")
            # The skipped records are consumed, not left behind: the group's committed
            # offset reaches the end of the topic, past the unknown type at its tail.
            end = await eventually(lambda: _committed_to_end(kafka_bootstrap, group, topic), 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert end == 12
        assert seen == ["111111", "333333"]
        applied = await conn.fetch("SELECT event_id FROM applied_events ORDER BY event_id")
        assert [r["event_id"] for r in applied] == ["1", "3"]
        await pool.close()


def raw_change_event(row_id: int, event_type: str, payload: str) -> bytes:
    """A change event whose payload column is the given text, as is."""
    event = json.loads(change_event(row_id, event_type, {}))
    event["after"]["payload"] = payload
    return json.dumps(event).encode()


async def _committed_to_end(bootstrap: str, group: str, topic: str) -> int | None:
    """The end offset of the topic's one partition once the group has committed it."""
    partition = TopicPartition(topic, 0)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await probe.start()
    await admin.start()
    try:
        end = (await probe.end_offsets([partition]))[partition]
        committed = (await admin.list_consumer_group_offsets(group)).get(partition)
    finally:
        await probe.stop()
        await admin.close()
    return end if committed is not None and committed.offset == end else None


async def _done(seen: list[str]) -> bool | None:
    return True if len(seen) >= 2 else None
