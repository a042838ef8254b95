"""Helpers of the platform tests: polling with a deadline, a gateway client, the mailbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import aioboto3
import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bmt_stack.config import HOST, StackSettings

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], within: float = 30.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something other than None, or fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {within}s")
        await asyncio.sleep(0.1)


class Client:
    """One client of the gateway, with its own address (so its own rate-limit buckets)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.address = (
            f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
        )
        self.token: str | None = None

    def headers(self, token: str | None = None) -> dict[str, str]:
        headers = {"X-Forwarded-For": self.address}
        if token or self.token:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return headers

    async def call(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, headers=self.headers(token), **kwargs
        ) as response:
            body: Any = None
            if response.content_type in ("application/json", "application/problem+json"):
                body = await response.json(content_type=None)
            elif response.status != 204:
                body = await response.text()
            return response.status, body


class Mailbox:
    """What SES (moto) sent, read back through moto's own API."""

    def __init__(self, http: aiohttp.ClientSession, endpoint: str) -> None:
        self.http = http
        self.endpoint = endpoint

    async def messages(self, recipient: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.endpoint}/moto-api/data.json") as response:
            data = await response.json(content_type=None)
        return [m for m in data["ses"]["Message"] if recipient in m["destinations"]["ToAddresses"]]

    async def wait_for(
        self, recipient: str, count: int = 1, within: float = 30.0
    ) -> list[dict[str, Any]]:
        async def arrived() -> list[dict[str, Any]] | None:
            found = await self.messages(recipient)
            return found if len(found) >= count else None

        return await eventually(arrived, within, f"{count} mail(s) to {recipient}")

    async def otp(self, recipient: str, count: int = 1) -> str:
        """The code of the `count`-th code mail to `recipient` (other mails are skipped)."""

        async def codes() -> list[str] | None:
            found = [
                match.group(1)
                for mail in await self.messages(recipient)
                if (match := re.search(r"code: (\d{6})$", mail["subject"]))
            ]
            return found if len(found) >= count else None

        return (await eventually(codes, 30.0, f"{count} code mail(s) to {recipient}"))[count - 1]


async def end_offsets(bootstrap: str, *topics: str) -> dict[TopicPartition, int]:
    """The offset after the last record of every partition of `topics`, now."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await probe.start()
    try:
        # A fresh consumer knows no topic yet (and aiokafka's stop() right after start()
        # trips over its own cancelled task): fetch the metadata first.
        await probe._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in probe.partitions_for_topic(topic) or ()
        ]
        return dict(await probe.end_offsets(partitions))
    finally:
        await probe.stop()


async def drained(bootstrap: str, group: str, topic: str, within: float = 30.0) -> None:
    """Wait until consumer group `group` has committed past everything now on `topic`."""
    ends = await end_offsets(bootstrap, topic)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:

        async def caught_up() -> bool | None:
            committed = await admin.list_consumer_group_offsets(group)
            for partition, end in ends.items():
                done = committed.get(partition)
                if end > 0 and (done is None or done.offset < end):
                    return None
            return True

        await eventually(caught_up, within, f"{group} consuming {topic} to its end")
    finally:
        await admin.close()


# The booking flow's set-up, shared by the booking and payment tests.
HALL = {
    "name": "Hall 1",
    "rows": [
        {"label": "A", "seats": 8, "seat_type": "standard", "price": 90_000},
        {"label": "B", "seats": 6, "seat_type": "vip", "price": 120_000},
        {"label": "C", "seats": 4, "seat_type": "couple", "price": 200_000},
    ],
    "blocked": ["A8"],
}


async def released_showtime(
    admin: Client, unique: str, hall: dict[str, Any] = HALL
) -> dict[str, Any]:
    """A cinema with one hall, a film, and a released showtime two days from now."""
    status, cinema = await admin.call(
        "POST",
        "/v1/cinemas",
        json={
            "name": f"BMT {unique}",
            "city": "Ho Chi Minh",
            "address": "1 Le Loi",
            "halls": [hall],
        },
    )
    assert status == 201, cinema
    status, film = await admin.call(
        "POST",
        "/v1/films",
        data={
            "title": f"Film {unique}",
            "release_date": "2026-12-01",
            "duration_minutes": "100",
            "age_rating": "T13",
            "genres": "drama",
        },
    )
    assert status == 201, film
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    status, showtime = await admin.call(
        "POST",
        "/v1/showtimes",
        json={
            "film_id": film["id"],
            "hall_id": cinema["halls"][0]["id"],
            "starts_at": starts.isoformat(),
        },
    )
    assert status == 201, showtime
    status, released = await admin.call("POST", f"/v1/showtimes/{showtime['id']}/release")
    assert status == 200, released
    assert released["released"] is True
    return dict(released)


async def seat_map(client: Client, showtime_id: int) -> dict[str, Any]:
    async def published() -> dict[str, Any] | None:
        status, body = await client.call("GET", f"/v1/showtimes/{showtime_id}/seats")
        return dict(body) if status == 200 else None

    return await eventually(published, 30, f"the seat map of showtime {showtime_id}")


def seat_ids(seats: dict[str, Any], *labels: str) -> list[int]:
    by_label = {s["label"]: s["seat_id"] for s in seats["seats"]}
    return [by_label[label] for label in labels]


# Media, as the flows upload it: tiny files that pass the services' type sniffing.
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 256
FILM = {
    "title": "The Long Night",
    "description": "A cinema's longest screening.",
    "release_date": "2026-12-01",
    "duration_minutes": "128",
    "genres": "drama,thriller",
    "age_rating": "T16",
}


def film_form(poster: bytes = PNG, trailer: bytes = MP4, **fields: str) -> aiohttp.FormData:
    """The multipart body of POST /v1/films: FILM's fields (or these), a poster and a trailer."""
    form = aiohttp.FormData()
    for name, value in {**FILM, **fields}.items():
        form.add_field(name, value)
    form.add_field("poster", poster, filename="poster.png", content_type="image/png")
    form.add_field("trailer", trailer, filename="trailer.mp4", content_type="video/mp4")
    return form


async def sqs_queue_empty(sqs: Any, queue_url: str) -> bool | None:
    """True once no message waits in the queue and none is being handled."""
    attributes = (
        await sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
    )["Attributes"]
    return True if set(attributes.values()) == {"0"} else None


@asynccontextmanager
async def tapped_notifications(
    settings: StackSettings, unique: str
) -> AsyncIterator[Callable[[], Awaitable[list[str]]]]:
    """A second queue on the media topic keeps a copy of every S3 notification; yields a
    function that takes what arrived (message bodies, as the upload queue gets them)."""
    session = aioboto3.Session()
    aws = aws_options(settings)
    async with session.client("sns", **aws) as sns, session.client("sqs", **aws) as sqs:
        topic_arn = next(
            t["TopicArn"]
            for t in (await sns.list_topics())["Topics"]
            if t["TopicArn"].endswith(":bmt-media-events")
        )
        tap_url = (await sqs.create_queue(QueueName=f"tap-{unique}"))["QueueUrl"]
        attributes = await sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])
        subscription = await sns.subscribe(
            TopicArn=topic_arn, Protocol="sqs", Endpoint=attributes["Attributes"]["QueueArn"]
        )

        async def bodies() -> list[str]:
            got = await sqs.receive_message(
                QueueUrl=tap_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            return [str(m["Body"]) for m in got.get("Messages", [])]

        try:
            yield bodies
        finally:
            await sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            await sqs.delete_queue(QueueUrl=tap_url)


def aws_options(settings: StackSettings) -> dict[str, str]:
    """Keyword arguments of an aioboto3 client of the stack's moto server."""
    return {
        "endpoint_url": f"http://{HOST}:{settings.port_moto}",
        "region_name": "us-east-1",
        "aws_access_key_id": "bmt",
        "aws_secret_access_key": "bmt",
    }
