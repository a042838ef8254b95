"""The SQS worker: each S3 object-created record becomes a `media_uploaded` event on Kafka,
and only then is the SQS message deleted. A message that cannot be read is left alone: SQS
redelivers it and, after the queue's maxReceiveCount, moves it to the dead-letter queue."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bmt_common import aws
from bmt_common.events import MediaUploaded
from bmt_common.kafka import Producer
from bmt_upload.s3events import PoisonMessage, media_ref, object_created
from bmt_upload.settings import UploadSettings

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, settings: UploadSettings, producer: Producer) -> None:
        self.settings = settings
        self.producer = producer
        self.queue_url: str | None = None
        self.published = 0

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with (
                    aws.client(self.settings, "sqs") as sqs,
                    aws.client(self.settings, "s3") as s3,
                ):
                    self.queue_url = (await sqs.get_queue_url(QueueName=self.settings.media_queue))[
                        "QueueUrl"
                    ]
                    delay = 0.5
                    while True:
                        await self.poll_once(sqs, s3)
            except asyncio.CancelledError:
                raise
            except (BotoCoreError, ClientError, OSError) as exc:
                self.queue_url = None
                log.warning("SQS unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def poll_once(self, sqs: Any, s3: Any) -> int:
        got = await sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.settings.poll_seconds,
        )
        handled = 0
        for message in got.get("Messages", []):
            if await self.handle(message, s3):
                await sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
                handled += 1
        return handled

    async def handle(self, message: dict[str, Any], s3: Any) -> bool:
        """True when the message is done with (published or not ours) and may be deleted."""
        try:
            records = object_created(message["Body"])
        except PoisonMessage as exc:
            log.error("poison message %s: %s", message.get("MessageId"), exc)
            return False
        for record in records:
            ref = media_ref(record.key)
            if ref is None:
                log.info("ignoring object %s/%s: not a media key", record.bucket, record.key)
                continue
            try:
                head = await s3.head_object(Bucket=record.bucket, Key=record.key)
            except ClientError as exc:
                log.error("object %s/%s cannot be read: %s", record.bucket, record.key, exc)
                return False
            event = MediaUploaded(
                owner=ref.owner,
                owner_id=ref.owner_id,
                slot=ref.slot,
                bucket=record.bucket,
                key=record.key,
                url=f"{self.settings.media_base_url}/{record.bucket}/{record.key}",
                size=int(head.get("ContentLength", record.size)),
            )
            await self.producer.publish(self.settings.media_topic, record.event_id, event)
            self.published += 1
            log.info("published media_uploaded", extra={"key": record.key})
        return True
