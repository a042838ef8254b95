"""What a Platform needs outside Kubernetes, created idempotently: Kafka topics, the
S3 -> SNS -> SQS media wiring with its dead-letter queue, the mail sender's SES identity, and
one Debezium connector per service database. Every function can run again at any time and
converges."""

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

from bmt_common.events import DATABASES, MEDIA_TOPIC, outbox_topic


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    connect_url: str
    aws_endpoint: str | None
    aws_region: str
    aws_access_key_id: str
    aws_secret_access_key: str
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str


@dataclass(frozen=True)
class MediaWiring:
    bucket: str = "bmt-media"
    sns_topic: str = "bmt-media-events"
    queue: str = "bmt-media-uploads"
    dead_letter_queue: str = "bmt-media-uploads-dlq"
    max_receives: int = 3


@dataclass(frozen=True)
class Plan:
    media: MediaWiring = field(default_factory=MediaWiring)
    partitions: int = 3
    retention_hours: int = 168
    databases: tuple[str, ...] = DATABASES
    mail_sender: str = "no-reply@bmt.local"


def topic_names(plan: Plan) -> list[str]:
    return [outbox_topic(db) for db in plan.databases] + [MEDIA_TOPIC]


async def ensure_topics(endpoints: Endpoints, plan: Plan) -> list[str]:
    """Create missing topics (outbox topics exist before anything subscribes)."""
    names = topic_names(plan)
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        retention = {"retention.ms": str(plan.retention_hours * 3600 * 1000)}
        missing = [
            NewTopic(n, plan.partitions, 1, topic_configs=retention)
            for n in names
            if n not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # made concurrently: goal met
                await admin.create_topics(missing)
    finally:
        await admin.close()
    return names


async def delete_topics(endpoints: Endpoints, plan: Plan) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        gone = [n for n in topic_names(plan) if n in existing]
        if gone:
            await admin.delete_topics(gone)
    finally:
        await admin.close()


def aws(endpoints: Endpoints, service: str) -> Any:
    return aioboto3.Session().client(
        service,
        endpoint_url=endpoints.aws_endpoint,
        region_name=endpoints.aws_region,
        aws_access_key_id=endpoints.aws_access_key_id,
        aws_secret_access_key=endpoints.aws_secret_access_key,
    )


async def _queue_arn(sqs: Any, url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def _public_read(bucket: str) -> str:
    # Posters, trailers and FAB images are public: anyone may read, only services write.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::{bucket}/*",
                }
            ],
        }
    )


async def ensure_bucket_notifying(endpoints: Endpoints, bucket: str, topic_arn: str) -> None:
    """A public-read bucket whose object-created events go to the topic."""
    async with aws(endpoints, "s3") as s3:
        buckets = {b["Name"] for b in (await s3.list_buckets())["Buckets"]}
        if bucket not in buckets:
            await s3.create_bucket(Bucket=bucket)
        await s3.put_bucket_policy(Bucket=bucket, Policy=_public_read(bucket))
        current = await s3.get_bucket_notification_configuration(Bucket=bucket)
        wanted = [{"TopicArn": topic_arn, "Events": ["s3:ObjectCreated:*"]}]
        have = [
            {"TopicArn": c["TopicArn"], "Events": c["Events"]}
            for c in current.get("TopicConfigurations", [])
        ]
        if have != wanted:
            await s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"TopicConfigurations": wanted}
            )


async def ensure_media_wiring(endpoints: Endpoints, wiring: MediaWiring) -> dict[str, str]:
    """Bucket -> SNS topic -> SQS queue (and a dead-letter queue after `max_receives`)."""
    async with aws(endpoints, "sns") as sns, aws(endpoints, "sqs") as sqs:
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
        subscriptions = (await sns.list_subscriptions_by_topic(TopicArn=topic_arn))["Subscriptions"]
        if not any(s["Endpoint"] == queue_arn for s in subscriptions):
            await sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    await ensure_bucket_notifying(endpoints, wiring.bucket, topic_arn)
    return {
        "bucket": wiring.bucket,
        "topicArn": topic_arn,
        "queueUrl": queue_url,
        "deadLetterQueueUrl": dlq_url,
    }


async def ensure_mail_sender(endpoints: Endpoints, sender: str) -> str:
    """The sender's SES identity; returns its verification status. A verification is only
    asked for an identity SES does not know: asking again would mail the sender again."""
    async with aws(endpoints, "ses") as ses:
        found = await ses.get_identity_verification_attributes(Identities=[sender])
        status = found["VerificationAttributes"].get(sender, {}).get("VerificationStatus")
        if status is None:
            await ses.verify_email_identity(EmailAddress=sender)
            found = await ses.get_identity_verification_attributes(Identities=[sender])
            status = found["VerificationAttributes"].get(sender, {}).get("VerificationStatus")
    return str(status or "Pending")


async def delete_bucket(endpoints: Endpoints, bucket: str) -> None:
    async with aws(endpoints, "s3") as s3:
        buckets = {b["Name"] for b in (await s3.list_buckets())["Buckets"]}
        if bucket not in buckets:
            return
        listed = await s3.list_objects_v2(Bucket=bucket)
        while listed.get("Contents"):
            await s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": o["Key"]} for o in listed["Contents"]]},
            )
            listed = await s3.list_objects_v2(Bucket=bucket)
        await s3.delete_bucket(Bucket=bucket)


async def delete_media_wiring(endpoints: Endpoints, wiring: MediaWiring) -> None:
    async with aws(endpoints, "sns") as sns, aws(endpoints, "sqs") as sqs:
        for name in (wiring.queue, wiring.dead_letter_queue):
            with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
                url = (await sqs.get_queue_url(QueueName=name))["QueueUrl"]
                await sqs.delete_queue(QueueUrl=url)
        topic_arn = (await sns.create_topic(Name=wiring.sns_topic))["TopicArn"]
        await sns.delete_topic(TopicArn=topic_arn)
    await delete_bucket(endpoints, wiring.bucket)


def connector_config(endpoints: Endpoints, database: str) -> dict[str, str]:
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": endpoints.postgres_host,
        "database.port": str(endpoints.postgres_port),
        "database.user": endpoints.postgres_user,
        "database.password": endpoints.postgres_password,
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
        # Debezium waits this long for more changes before handing a batch to Kafka (500 ms
        # by default): the floor of every event's latency.
        "poll.interval.ms": "50",
    }


async def ensure_connectors(
    endpoints: Endpoints, databases: list[str], within: float = 90.0
) -> dict[str, str]:
    """Register (or update) each database's connector and wait until its task runs."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for database in databases:
            async with http.put(
                f"{endpoints.connect_url}/connectors/{database}/config",
                json=connector_config(endpoints, database),
            ) as response:
                if response.status not in (200, 201):
                    raise RuntimeError(
                        f"connector {database}: {response.status} {await response.text()}"
                    )
        deadline = asyncio.get_running_loop().time() + within
        states: dict[str, str] = {}
        while True:
            for database in databases:
                async with http.get(f"{endpoints.connect_url}/connectors/{database}/status") as r:
                    body = await r.json() if r.status == 200 else {}
                tasks = body.get("tasks", [])
                states[database] = tasks[0]["state"] if tasks else "STARTING"
            if all(state == "RUNNING" for state in states.values()):
                return states
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"connectors not running after {within:.0f}s: {states}")
            await asyncio.sleep(0.5)


async def delete_connectors(endpoints: Endpoints, databases: list[str]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for database in databases:
            async with http.delete(f"{endpoints.connect_url}/connectors/{database}") as r:
                if r.status not in (204, 404):
                    raise RuntimeError(f"connector {database}: {r.status} {await r.text()}")
