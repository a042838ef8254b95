"""Flow 2 through the gateway: an admin adds films and FAB with media; the URLs arrive over
the real S3 -> SNS -> SQS -> upload -> Kafka -> product path."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_plus

import aioboto3
import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bmt_stack.config import HOST, StackSettings
from support import (
    MP4,
    PNG,
    Client,
    aws_options,
    drained,
    eventually,
    film_form,
    tapped_notifications,
)


async def media_ready(client: Client, path: str, field: str = "media_status") -> dict[str, Any]:
    async def ready() -> dict[str, Any] | None:
        status, body = await client.call("GET", path)
        assert status == 200, body
        ready = body.get(field) == "ready" if field == "media_status" else body.get(field)
        return dict(body) if ready else None

    return await eventually(ready, 30, f"media of {path}")


async def test_admin_adds_a_film_and_its_media_urls_arrive(
    admin: Client, client: Client, http: aiohttp.ClientSession
) -> None:
    status, film = await admin.call("POST", "/v1/films", data=film_form())
    assert status == 201, film
    assert film["genres"] == ["drama", "thriller"]
    ready = await media_ready(client, f"/v1/films/{film['id']}")
    assert re.search(
        rf"/bmt-media/films/{film['id']}/poster-[0-9a-f]{{32}}\.png$", ready["poster_url"]
    )
    assert re.search(
        rf"/bmt-media/films/{film['id']}/trailer-[0-9a-f]{{32}}\.mp4$", ready["trailer_url"]
    )
    async with http.get(ready["poster_url"]) as response:
        assert await response.read() == PNG
    listed: list[int] = []
    for page in range(50):  # the catalogue grows with every run: page through it
        status, listing = await client.call(
            "GET", "/v1/films", params={"limit": "200", "offset": str(200 * page)}
        )
        assert status == 200
        listed += [f["id"] for f in listing["items"]]
        if film["id"] in listed or not listing["items"]:
            break
    assert film["id"] in listed


async def test_a_new_poster_replaces_the_old(admin: Client, client: Client) -> None:
    _, film = await admin.call("POST", "/v1/films", data=film_form())
    first = await media_ready(client, f"/v1/films/{film['id']}")
    form = aiohttp.FormData()
    form.add_field("title", "The Longer Night")
    form.add_field("poster", PNG + b"v2", filename="p.png", content_type="image/png")
    status, changed = await admin.call("PATCH", f"/v1/films/{film['id']}", data=form)
    assert status == 200, changed
    assert changed["title"] == "The Longer Night"

    async def new_poster() -> str | None:
        _, body = await client.call("GET", f"/v1/films/{film['id']}")
        url = body["poster_url"]
        return url if url and url != first["poster_url"] else None

    assert await eventually(new_poster, 30, "the new poster URL")
    _, final = await client.call("GET", f"/v1/films/{film['id']}")
    assert final["trailer_url"] == first["trailer_url"]


async def test_admin_adds_a_fab_item_with_its_image(admin: Client, client: Client) -> None:
    form = aiohttp.FormData()
    for name, value in {"name": "Caramel popcorn", "kind": "food", "price": "65000"}.items():
        form.add_field(name, value)
    form.add_field("image", PNG, filename="popcorn.png", content_type="image/png")
    status, fab = await admin.call("POST", "/v1/fabs", data=form)
    assert status == 201, fab
    assert fab["price"] == 65000
    ready = await media_ready(client, f"/v1/fabs/{fab['id']}", field="image_url")
    assert re.search(rf"/fabs/{fab['id']}/image-[0-9a-f]{{32}}\.png$", ready["image_url"])
    _, listing = await client.call("GET", "/v1/fabs")
    assert fab["id"] in [item["id"] for item in listing["items"]]


async def test_a_file_of_the_wrong_type_is_refused(admin: Client) -> None:
    status, problem = await admin.call(
        "POST", "/v1/films", data=film_form(poster=b"GIF89a" + b"\x00" * 32)
    )
    assert status == 415
    assert problem["detail"] == (
        "poster must be one of image/jpeg, image/png, image/webp (judged by its content)"
    )


async def test_a_file_too_large_is_refused_with_the_limit(admin: Client) -> None:
    too_big = PNG + b"\x00" * (5 * 1024 * 1024)
    status, problem = await admin.call("POST", "/v1/films", data=film_form(poster=too_big))
    assert status == 413
    assert problem["detail"] == "poster is larger than the limit of 5 MiB"


async def test_invalid_fields_are_named(admin: Client) -> None:
    status, problem = await admin.call(
        "POST", "/v1/films", data=film_form(duration_minutes="0", genres="drama,telenovela")
    )
    assert status == 422
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {"duration_minutes", "genres"}


@pytest.mark.parametrize(("who", "expected"), [("anonymous", 401), ("customer", 403)])
async def test_only_admins_add_films(
    who: str, expected: int, new_client: Callable[[], Client], admin: Client, unique: str
) -> None:
    caller = new_client()
    if who == "customer":
        email = f"staffless-{unique}@example.com"
        status, _ = await admin.call(
            "POST",
            "/v1/users",
            json={"email": email, "password": "password-123", "name": "C", "role": "customer"},
        )
        assert status == 201
        _, tokens = await caller.call(
            "POST", "/v1/auth/login", json={"email": email, "password": "password-123"}
        )
        caller.token = tokens["access_token"]
    status, problem = await caller.call("POST", "/v1/films", data=film_form())
    assert status == expected, problem


async def poster_records(
    bootstrap: str, object_key: str, at_least: int
) -> list[tuple[bytes, bytes]]:
    """The media_uploaded records of one object, once there are `at_least` of them."""
    reader = AIOKafkaConsumer(
        "bmt.media-uploaded", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    found: list[tuple[bytes, bytes]] = []
    try:

        async def enough() -> list[tuple[bytes, bytes]] | None:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                found.extend(
                    (r.value, r.key)
                    for r in batch
                    if json.loads(r.value)["payload"]["key"] == object_key
                )
            return found if len(found) >= at_least else None

        return await eventually(enough, 30, f"{at_least} records of {object_key}")
    finally:
        await reader.stop()


async def _add_film_and_tap(
    admin: Client, client: Client, tap: Callable[[], Awaitable[list[str]]]
) -> tuple[str, dict[str, Any], dict[str, Any], str]:
    """Adds a film; returns its poster key, the film once ready, and the poster's notification
    as the tap queue received it."""
    _, film = await admin.call("POST", "/v1/films", data=film_form())
    before = await media_ready(client, f"/v1/films/{film['id']}")
    poster_key = before["poster_url"].split("/bmt-media/", 1)[1]

    async def poster_notification() -> str | None:
        for body in await tap():
            event = json.loads(json.loads(body)["Message"])
            keys = [unquote_plus(r["s3"]["object"]["key"]) for r in event.get("Records", [])]
            if poster_key in keys:
                return body
        return None

    body = await eventually(poster_notification, 30, "the poster's notification on the tap")
    return poster_key, before, film, body


async def test_replayed_event_and_redelivered_sqs_message_change_nothing(
    admin: Client,
    client: Client,
    kafka_bootstrap: str,
    bmt_platform: StackSettings,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    unique: str,
) -> None:
    # A second queue on the topic keeps a copy of the notification to deliver again.
    async with tapped_notifications(bmt_platform, unique) as tap:
        poster_key, before, film, body = await _add_film_and_tap(admin, client, tap)
    async with aioboto3.Session().client("sqs", **aws_options(bmt_platform)) as sqs:
        queue_url = (await sqs.get_queue_url(QueueName="bmt-media-uploads"))["QueueUrl"]
        await sqs.send_message(QueueUrl=queue_url, MessageBody=body)  # SQS delivers it again

    # The upload service publishes the re-delivered notification under the same event id.
    records = await poster_records(kafka_bootstrap, poster_key, at_least=2)
    assert len({json.loads(value)["id"] for value, _ in records}) == 1
    # ... and the media_uploaded record goes to Kafka once more, as a broker retry would.
    value, key = records[0]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("bmt.media-uploaded", value, key=key)
    finally:
        await producer.stop()
    event_id = json.loads(value)["id"]
    await drained(kafka_bootstrap, "bmt-product", "bmt.media-uploaded")
    conn = await db("bmt_product")
    try:
        assert await conn.fetchval("SELECT count(*) FROM media WHERE key = $1", poster_key) == 1
        assert (
            await conn.fetchval("SELECT count(*) FROM applied_events WHERE event_id = $1", event_id)
            == 1
        )
    finally:
        await conn.close()
    _, after = await client.call("GET", f"/v1/films/{film['id']}")
    assert after == before


async def test_a_managed_film_imports_its_media_once(
    admin: Client, client: Client, bmt_platform: StackSettings, unique: str
) -> None:
    """The operator's way in: a film by external key, media from a URL or a bucket object."""
    async with aioboto3.Session().client("s3", **aws_options(bmt_platform)) as s3:
        await s3.put_object(Bucket="bmt-media", Key=f"imports/{unique}/poster.png", Body=PNG)
        await s3.put_object(Bucket="bmt-media", Key=f"imports/{unique}/trailer.mp4", Body=MP4)
    spec = {
        "title": "Managed",
        "release_date": "2026-12-24",
        "duration_minutes": 95,
        "age_rating": "P",
        "genres": ["family"],
        "poster": {"object_key": f"imports/{unique}/poster.png"},
        "trailer": {
            "url": f"http://{HOST}:{bmt_platform.port_moto}/bmt-media/imports/{unique}/trailer.mp4"
        },
    }
    status, film = await admin.call("PUT", f"/v1/films/by-key/default.{unique}", json=spec)
    assert status == 200, film
    ready = await media_ready(client, f"/v1/films/{film['id']}")
    again_status, again = await admin.call(
        "PUT", f"/v1/films/by-key/default.{unique}", json={**spec, "title": "Managed 2"}
    )
    assert again_status == 200
    assert again["id"] == film["id"]
    assert (again["title"], again["poster_url"]) == ("Managed 2", ready["poster_url"])
    missing = {**spec, "poster": {"object_key": "imports/nothing-here.png"}}
    status, problem = await admin.call("PUT", f"/v1/films/by-key/other.{unique}", json=missing)
    assert status == 422
    assert "is not in bmt-media" in problem["detail"]
    elsewhere = {**spec, "poster": {"url": "http://169.254.169.254/latest/meta-data"}}
    status, problem = await admin.call("PUT", f"/v1/films/by-key/other.{unique}", json=elsewhere)
    assert status == 422
    assert "are not fetched from '169.254.169.254'" in problem["detail"]
    assert (await admin.call("DELETE", f"/v1/films/by-key/default.{unique}"))[0] == 204
    assert (await client.call("GET", f"/v1/films/{film['id']}"))[0] == 404
