"""Kafka for services: the one consumer loop that applies each event exactly once, and the
idempotent producer."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import ValidationError

from bmt_common.app import background
from bmt_common.db import Connection
from bmt_common.events import EVENT_TYPES, Event

log = logging.getLogger(__name__)

Handler = Callable[[Connection, Any], Awaitable[None]]


@dataclass(frozen=True)
class Delivery:
    source: str
    event_id: str
    event: Event


def decode(record: ConsumerRecord[Any, Any]) -> Delivery | None:
    """A Debezium change event of an `outboxes` row, or a direct event envelope; None to skip.

    Skipped and logged: tombstones, updates and deletes of outbox rows (never written),
    records that are not JSON objects, unknown event types and payloads that do not match
    their model. Nothing here raises: a record that raised would be retried forever and
    hold up its partition.
    """
    if record.value is None:
        return None
    try:
        message = json.loads(record.value)
    except ValueError:
        log.warning("skipping a record that is not JSON", extra={"topic": record.topic})
        return None
    if not isinstance(message, dict):
        log.warning("skipping a record that is not a JSON object", extra={"topic": record.topic})
        return None
    if "op" in message:  # Debezium: only inserts and snapshot reads carry new events
        row = message.get("after") if message.get("op") in ("c", "r") else None
        if row is None:
            return None
        if not isinstance(row, dict):
            log.warning(
                "skipping a change event whose row is not an object", extra={"topic": record.topic}
            )
            return None
        event_id, event_type = str(row.get("id")), row.get("event_type")
        payload = row.get("payload")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload)
            except ValueError:
                log.error(
                    "skipping %s %s: its payload is not JSON",
                    event_type,
                    event_id,
                    extra={"topic": record.topic},
                )
                return None
    else:
        event_id, event_type, payload = (
            str(message.get("id")),
            message.get("type"),
            message.get("payload"),
        )
    kind = EVENT_TYPES.get(str(event_type))
    if kind is None:
        log.warning("skipping unknown event type %r", event_type, extra={"topic": record.topic})
        return None
    try:
        event = kind.model_validate(payload)
    except ValidationError as exc:
        log.error(
            "skipping %s %s: payload does not match its model: %s",
            event_type,
            event_id,
            exc,
            extra={"topic": record.topic},
        )
        return None
    return Delivery(record.topic, event_id, event)


class Consumer:
    """Reads `topics` as group `group_id`; each event of a handled type is applied once.

    The applied event's id is inserted into `applied_events` in the transaction of the
    handler's effect; a duplicate finds the row and is skipped. Offsets are committed only
    after the records before them are applied, so a crash re-delivers and changes nothing.
    A failing handler is retried with backoff and never skipped: nothing is lost.
    """

    def __init__(
        self,
        *,
        bootstrap: str,
        group_id: str,
        topics: list[str],
        pool: asyncpg.Pool,
        handlers: Mapping[type[Event], Handler],
        instance_id: str | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.instance_id = instance_id
        self.topics = topics
        self.pool = pool
        self.handlers = handlers
        self.applied = 0
        self.running = False

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        self.running = True
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=200)
                for partition, records in batches.items():
                    for record in records:
                        await self._apply_until_done(record)
                    await consumer.commit({partition: records[-1].offset + 1})
        finally:
            self.running = False
            await consumer.stop()

    async def _apply_until_done(self, record: ConsumerRecord[Any, Any]) -> None:
        delay = 0.2
        while True:
            try:
                await self.apply(record)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "applying %s@%s failed; retrying in %.1fs",
                    TopicPartition(record.topic, record.partition),
                    record.offset,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def apply(self, record: ConsumerRecord[Any, Any]) -> bool:
        """Apply one record; True if it had an effect, False if skipped or already applied."""
        delivery = decode(record)
        if delivery is None:
            return False
        handler = self.handlers.get(type(delivery.event))
        if handler is None:
            return False  # an event of the topic this service does not act on
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                "INSERT INTO applied_events (source, event_id) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING RETURNING true",
                delivery.source,
                delivery.event_id,
            )
            if not fresh:
                log.info("already applied %s %s", delivery.event.TYPE, delivery.event_id)
                return False
            await handler(conn, delivery.event)
        self.applied += 1
        return True


def consumer_ctx(
    make: Callable[[web.Application], Consumer],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context running a consumer for the life of the app; ready once it has joined."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        consumer = make(app)
        async with background(
            app,
            consumer.run(),
            f"consumer {consumer.group_id}",
            lambda: None if consumer.running else "consumer not started",
        ):
            yield

    return ctx


class Producer:
    """An idempotent producer (acks=all): a retried send never duplicates a record."""

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all"
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, topic: str, event_id: str, event: Event) -> None:
        envelope = {
            "id": event_id,
            "type": event.TYPE,
            "version": event.VERSION,
            "payload": event.model_dump(mode="json"),
        }
        await self._producer.send_and_wait(
            topic, json.dumps(envelope).encode(), key=event.aggregate_id().encode()
        )
