"""The SQS worker: each S3 object-created record becomes a `media_uploaded` event on Kafka,
and only then is the SQS message deleted. A message that can never succeed (not an S3
notification, or its object is gone) is made visible again at once, so SQS moves it to the
dead-letter queue after the queue's maxReceiveCount receives, in seconds; a message that
failed for a passing reason (S3 or Kafka down) waits out its visibility timeout first."""

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
            receipt = message["ReceiptHandle"]
            try:
                done = await self.handle(message, s3)
            except PoisonMessage as exc:
                log.error("poison message %s: %s", message.get("MessageId"), exc)
                # Retrying cannot help: straight back to the queue, to be dead-lettered.
                await sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
                )
                continue
            except (BotoCoreError, ClientError, OSError):
                raise  # SQS or S3 unreachable: run() reconnects
            except Exception:
                # Kafka down, or a bug: never the end of the worker. Retried after the
                # visibility timeout, dead-lettered if it keeps failing.
                log.exception("message %s failed; left for a retry", message.get("MessageId"))
                continue
            if done:
                await sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)
                handled += 1
        return handled

    async def handle(self, message: dict[str, Any], s3: Any) -> bool:
        """True when the message is done with (published or not ours) and may be deleted;
        False to leave it for a retry; PoisonMessage when no retry can help."""
        records = object_created(message["Body"])
        for record in records:
            ref = media_ref(record.key)
            if ref is None or record.bucket != self.settings.media_bucket:
                log.info("ignoring object %s/%s: not a media object", record.bucket, record.key)
                continue
            try:
                head = await s3.head_object(Bucket=record.bucket, Key=record.key)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise PoisonMessage(
                        f"object {record.bucket}/{record.key} does not exist"
                    ) from None
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
