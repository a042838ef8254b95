"""Debezium streams an `outboxes` table into `<database>.public.outboxes`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from bmt_stack.config import HOST, StackSettings
from support import eventually


@pytest.fixture
async def scratch_db(postgres_dsn: str, unique: str) -> AsyncIterator[str]:
    name = f"bmt_dbz_{unique}"
    admin = await asyncpg.connect(postgres_dsn.format(database="postgres"))
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield name
    finally:
        # The deleted connector lets go of its slot shortly after; the slot must go first.
        async def released() -> bool | None:
            active = await admin.fetchval(
                "SELECT count(*) FROM pg_replication_slots WHERE database = $1 AND active", name
            )
            return True if active == 0 else None

        await eventually(released, 30, "the replication slot to be released")
        await admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE database = $1",
            name,
        )
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _wait_running(http: aiohttp.ClientSession, url: str, within: float = 60.0) -> None:
    async def running() -> bool | None:
        async with http.get(url) as response:
            state = await response.json() if response.status == 200 else {}
        tasks = state.get("tasks", []) if isinstance(state, dict) else []
        return True if tasks and all(task["state"] == "RUNNING" for task in tasks) else None

    await eventually(running, within, f"the connector at {url} to run")


async def test_outbox_row_reaches_its_topic(
    scratch_db: str, postgres_dsn: str, connect_url: str, kafka_bootstrap: str, stack: StackSettings
) -> None:
    conn = await asyncpg.connect(postgres_dsn.format(database=scratch_db))
    await conn.execute(
        "CREATE TABLE outboxes (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, "
        "event_type text NOT NULL, payload jsonb NOT NULL)"
    )
    config = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": HOST,
        "database.port": str(stack.port_postgres),
        "database.user": "bmt",
        "database.password": stack.postgres_password.get_secret_value(),
        "database.dbname": scratch_db,
        "topic.prefix": scratch_db,
        "table.include.list": "public.outboxes",
        "slot.name": f"{scratch_db}_slot",
        "publication.name": f"{scratch_db}_pub",
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "no_data",
    }
    topic = f"{scratch_db}.public.outboxes"
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{connect_url}/connectors/{scratch_db}/config", json=config) as r:
            assert r.status in (200, 201), await r.text()
        try:
            await _wait_running(http, f"{connect_url}/connectors/{scratch_db}/status")
            await conn.execute(
                "INSERT INTO outboxes (aggregate_id, event_type, payload) VALUES ($1, $2, $3)",
                "order-1",
                "order_created",
                json.dumps({"total": 90000}),
            )
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
            )
            await consumer.start()
            try:
                message = await asyncio.wait_for(consumer.getone(), timeout=60)
            finally:
                await consumer.stop()
        finally:
            async with http.delete(f"{connect_url}/connectors/{scratch_db}") as r:
                assert r.status in (204, 404)
            await conn.close()
    event = json.loads(message.value)
    assert event["op"] == "c"
    after = event["after"]
    assert after["aggregate_id"] == "order-1"
    assert after["event_type"] == "order_created"
    # jsonb arrives as its JSON text: consumers parse it once more.
    assert json.loads(after["payload"]) == {"total": 90000}
