"""Reading S3 event notifications as delivered through SNS to SQS; free of I/O."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import unquote_plus

# Keys written by the product service: films/12/poster-<hex>.jpg, fabs/3/image-<hex>.png
_KEY = re.compile(r"^(film|fab)s/(\d{1,18})/(poster|trailer|image)-[0-9a-f]{32}\.\w{2,5}$")


class PoisonMessage(ValueError):
    """The message cannot be read: it is left for SQS to move to the dead-letter queue."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    size: int
    sequencer: str

    @property
    def event_id(self) -> str:
        # The same PutObject always yields the same id; a new upload of the key, a new one.
        return hashlib.sha256(f"{self.bucket}/{self.key}/{self.sequencer}".encode()).hexdigest()


@dataclass(frozen=True)
class MediaRef:
    owner: Literal["film", "fab"]
    owner_id: int
    slot: Literal["poster", "trailer", "image"]


def object_created(body: str) -> list[ObjectCreated]:
    """The ObjectCreated records of an SQS message body (an SNS envelope); [] for a test event."""
    try:
        envelope = json.loads(body)
        message = envelope["Message"] if "TopicArn" in envelope else body
        event = json.loads(message)
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"not an S3 event notification: {exc}") from None
    if not isinstance(event, dict):
        raise PoisonMessage("not an S3 event notification: not an object")
    if event.get("Event") == "s3:TestEvent":
        return []
    try:
        return [
            ObjectCreated(
                bucket=record["s3"]["bucket"]["name"],
                key=unquote_plus(record["s3"]["object"]["key"]),
                size=int(record["s3"]["object"].get("size", 0)),
                sequencer=str(record["s3"]["object"].get("sequencer", "")),
            )
            for record in event["Records"]
            if str(record.get("eventName", "")).startswith("ObjectCreated:")
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"malformed S3 record: {exc!r}") from None


def media_ref(key: str) -> MediaRef | None:
    """Which film or FAB item and slot an object key belongs to; None for other objects."""
    found = _KEY.match(key)
    if found is None:
        return None
    owner, owner_id, slot = found.groups()
    return MediaRef(cast(Any, owner), int(owner_id), cast(Any, slot))
