"""aiokafka against the stack's Kafka: the features the services rely on."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def _create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def _drain(consumer: AIOKafkaConsumer, want: int, within: float = 20.0) -> list[bytes]:
    """Read until `want` records arrived or `within` seconds passed; returns the values read."""
    values: list[bytes] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(values) < want and asyncio.get_running_loop().time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            values.extend(record.value for record in records)
    return values


async def test_idempotent_producer_and_consumer(kafka_bootstrap: str, unique: str) -> None:
    topic = f"t-produce-{unique}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values = await _drain(consumer, 5)
    finally:
        await consumer.stop()
    assert values == [b"m0", b"m1", b"m2", b"m3", b"m4"]


async def test_aborted_transaction_is_invisible_to_read_committed(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"t-txn-{unique}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"txn-{unique}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()

    async def read(isolation: str) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            auto_offset_reset="earliest",
            isolation_level=isolation,
        )
        await consumer.start()
        try:
            return await _drain(consumer, 3, within=8.0)
        finally:
            await consumer.stop()

    assert await read("read_committed") == [b"committed-1", b"committed-2"]
    # The aborted record is on the log: only isolation hides it.
    assert b"aborted" in await read("read_uncommitted")


async def test_consumer_group_resumes_after_manual_commit(
    kafka_bootstrap: str, unique: str
) -> None:
    topic, group = f"t-group-{unique}", f"g-{unique}"
    await _create_topic(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(6):
            await producer.send_and_wait(topic, f"m{i}".encode())
    finally:
        await producer.stop()

    def new_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = new_consumer()
    await first.start()
    try:
        seen = await _drain(first, 6)
        assert len(seen) == 6
        # Commit only the first four: the next member of the group must start at m4.
        await first.commit({TopicPartition(topic, 0): 4})
    finally:
        await first.stop()

    second = new_consumer()
    await second.start()
    try:
        assert await _drain(second, 2) == [b"m4", b"m5"]
    finally:
        await second.stop()
