"""What the platform needs inside the running components, provisioned idempotently:
Kafka topics, the S3 -> SNS -> SQS media wiring (with its dead-letter queue), and one
Debezium connector per service database."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import aiohttp
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from bmt_stack.config import HOST, StackSettings

DATABASES = ("bmt_user", "bmt_mail", "bmt_product", "bmt_showtime", "bmt_order", "bmt_payment")
MEDIA_TOPIC = "bmt.media-uploaded"


@dataclass(frozen=True)
class MediaWiring:
    bucket: str = "bmt-media"
    sns_topic: str = "bmt-media-events"
    queue: str = "bmt-media-uploads"
    dead_letter_queue: str = "bmt-media-uploads-dlq"
    max_receives: int = 3


@dataclass
class Plan:
    partitions: int = 3
    media: MediaWiring = field(default_factory=MediaWiring)


def outbox_topic(database: str) -> str:
    return f"{database}.public.outboxes"


async def ensure_topics(settings: StackSettings, plan: Plan) -> list[str]:
    """Outbox topics exist before anything subscribes, so consumers never wait for metadata."""
    names = [outbox_topic(db) for db in DATABASES] + [MEDIA_TOPIC]
    admin = AIOKafkaAdminClient(bootstrap_servers=f"{HOST}:{settings.port_kafka}")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, plan.partitions, 1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # made concurrently: goal met
                await admin.create_topics(missing)
    finally:
        await admin.close()
    return names


def _aws(settings: StackSettings, service: str) -> Any:
    return aioboto3.Session().client(
        service,
        endpoint_url=f"http://{HOST}:{settings.port_moto}",
        region_name="us-east-1",
        # moto checks no credentials; they only have to exist.
        aws_access_key_id="bmt",
        aws_secret_access_key="bmt",  # noqa: S106
    )


async def ensure_media_wiring(settings: StackSettings, wiring: MediaWiring) -> dict[str, str]:
    """Bucket -> SNS topic -> SQS queue (with a dead-letter queue after `max_receives`)."""
    async with (
        _aws(settings, "s3") as s3,
        _aws(settings, "sns") as sns,
        _aws(settings, "sqs") as sqs,
    ):
        topic_arn = (await sns.create_topic(Name=wiring.sns_topic))["TopicArn"]
        dlq_url = (await sqs.create_queue(QueueName=wiring.dead_letter_queue))["QueueUrl"]
        dlq_arn = await _queue_arn(sqs, dlq_url)
        queue_url = (await sqs.create_queue(QueueName=wiring.queue))["QueueUrl"]
        queue_arn = await _queue_arn(sqs, queue_url)
        await sqs.set_queue_attributes(
            QueueUrl=queue_url,
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(wiring.max_receives)}
                ),
                "VisibilityTimeout": "30",
                # Only the topic may send to the queue.
                "Policy": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "sns.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": queue_arn,
                                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                            }
                        ],
                    }
                ),
            },
        )
        subscriptions = await sns.list_subscriptions_by_topic(TopicArn=topic_arn)
        if not any(s["Endpoint"] == queue_arn for s in subscriptions["Subscriptions"]):
            await sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        buckets = {b["Name"] for b in (await s3.list_buckets())["Buckets"]}
        if wiring.bucket not in buckets:
            await s3.create_bucket(Bucket=wiring.bucket)
        # Posters, trailers and FAB images are public: anyone may read, only services write.
        await s3.put_bucket_policy(
            Bucket=wiring.bucket,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "PublicRead",
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{wiring.bucket}/*",
                        }
                    ],
                }
            ),
        )
        await s3.put_bucket_notification_configuration(
            Bucket=wiring.bucket,
            NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic_arn, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
    return {"topic_arn": topic_arn, "queue_url": queue_url, "dead_letter_queue_url": dlq_url}


async def _queue_arn(sqs: Any, url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def connector_config(settings: StackSettings, database: str) -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": HOST,
        "database.port": str(settings.port_postgres),
        "database.user": "bmt",
        "database.password": settings.postgres_password.get_secret_value(),
        "database.dbname": database,
        "topic.prefix": database,
        "table.include.list": "public.outboxes",
        "slot.name": f"{database}_debezium",
        "publication.name": f"{database}_outbox",
        "publication.autocreate.mode": "filtered",
        # Rows written before the connector existed are streamed too; consumers de-duplicate.
        "snapshot.mode": "initial",
        # Keyed by aggregate, so one aggregate's events stay in order on one partition.
        "message.key.columns": "public.outboxes:aggregate_id",
        "tombstones.on.delete": "false",
    }


async def ensure_connectors(
    settings: StackSettings, databases: list[str], within: float = 90.0
) -> None:
    base = f"http://{HOST}:{settings.port_connect}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for database in databases:
            async with http.put(
                f"{base}/connectors/{database}/config", json=connector_config(settings, database)
            ) as response:
                if response.status not in (200, 201):
                    raise RuntimeError(
                        f"connector {database}: {response.status} {await response.text()}"
                    )
        deadline = asyncio.get_running_loop().time() + within
        pending = set(databases)
        last: dict[str, Any] = {}
        while pending:
            for database in sorted(pending):
                async with http.get(f"{base}/connectors/{database}/status") as response:
                    last[database] = await response.json() if response.status == 200 else {}
                tasks = last[database].get("tasks", [])
                if tasks and all(t["state"] == "RUNNING" for t in tasks):
                    pending.discard(database)
            if pending and asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"connectors not running after {within:.0f}s: "
                    + "; ".join(f"{db}: {last.get(db)}" for db in sorted(pending))
                )
            if pending:
                await asyncio.sleep(0.5)


async def provision(settings: StackSettings, plan: Plan) -> dict[str, str]:
    topics, wiring = await asyncio.gather(
        ensure_topics(settings, plan), ensure_media_wiring(settings, plan.media)
    )
    return {"topics": ", ".join(topics), **wiring}
