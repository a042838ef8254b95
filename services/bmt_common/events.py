"""The events services exchange: versioned pydantic models shared by producers and consumers.

Outbox events travel as Debezium change events of an `outboxes` row; `media_uploaded` is
published straight to Kafka by the upload service inside the same envelope fields.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

MEDIA_TOPIC = "bmt.media-uploaded"


def outbox_topic(database: str) -> str:
    return f"{database}.public.outboxes"


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    AGGREGATE: ClassVar[str]

    def aggregate_id(self) -> str:
        raise NotImplementedError


class OtpRequested(Event):
    TYPE = "otp_requested"
    AGGREGATE = "email"
    email: str
    otp: str
    purpose: Literal["registration", "password_reset"]
    expires_at: dt.datetime

    def aggregate_id(self) -> str:
        return self.email


class UserRegistered(Event):
    TYPE = "user_registered"
    AGGREGATE = "user"
    user_id: int
    email: str
    name: str

    def aggregate_id(self) -> str:
        return str(self.user_id)


class SessionRevoked(Event):
    TYPE = "session_revoked"
    AGGREGATE = "user"
    user_id: int
    session_id: str
    expires_at: dt.datetime

    def aggregate_id(self) -> str:
        return str(self.user_id)


class MediaUploaded(Event):
    TYPE = "media_uploaded"
    AGGREGATE = "media"
    owner: Literal["film", "fab"]
    owner_id: int
    slot: Literal["poster", "trailer", "image"]
    bucket: str
    key: str
    url: str
    size: int

    def aggregate_id(self) -> str:
        return f"{self.owner}:{self.owner_id}"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.TYPE: cls for cls in (OtpRequested, UserRegistered, SessionRevoked, MediaUploaded)
}
