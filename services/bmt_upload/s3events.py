"""Reading S3 event notifications as delivered through SNS to SQS; free of I/O."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import unquote_plus

from pydantic import BaseModel, Field, ValidationError

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


class _Bucket(BaseModel):
    name: str


class _Object(BaseModel):
    key: str
    size: int = 0
    sequencer: str = ""


class _S3(BaseModel):
    bucket: _Bucket
    object: _Object


class _Record(BaseModel):
    event_name: str = Field(default="", alias="eventName")
    s3: _S3 | None = None  # checked only for the ObjectCreated records read


class _Notification(BaseModel):
    Records: list[_Record]


def object_created(body: str) -> list[ObjectCreated]:
    """The ObjectCreated records of an SQS message body (an SNS envelope); [] for a test event.
    Anything else, of any shape, is a PoisonMessage: never an exception of another kind."""
    try:
        envelope = json.loads(body)
        message = (
            envelope["Message"] if isinstance(envelope, dict) and "TopicArn" in envelope else body
        )
        event = json.loads(message)
    except (ValueError, KeyError, TypeError) as exc:
        raise PoisonMessage(f"not an S3 event notification: {exc}") from None
    if not isinstance(event, dict):
        raise PoisonMessage("not an S3 event notification: not an object")
    if event.get("Event") == "s3:TestEvent":
        return []
    try:
        records = _Notification.model_validate(event).Records
    except ValidationError as exc:
        raise PoisonMessage(f"malformed S3 notification: {_fields(exc)}") from None
    created = []
    for n, record in enumerate(records):
        if not record.event_name.startswith("ObjectCreated:"):
            continue
        if record.s3 is None:
            raise PoisonMessage(f"malformed S3 notification: Records.{n}.s3 is missing")
        created.append(
            ObjectCreated(
                bucket=record.s3.bucket.name,
                key=unquote_plus(record.s3.object.key),
                size=record.s3.object.size,
                sequencer=record.s3.object.sequencer,
            )
        )
    return created


def _fields(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def media_ref(key: str) -> MediaRef | None:
    """Which film or FAB item and slot an object key belongs to; None for other objects."""
    found = _KEY.match(key)
    if found is None:
        return None
    owner, owner_id, slot = found.groups()
    return MediaRef(cast(Any, owner), int(owner_id), cast(Any, slot))
