"""Bad input, end to end on the running platform (what tests/platform already proves is not
repeated: a poster of the wrong type or over 5 MiB, invalid form fields, unknown routes).

- malformed, oversized and wrongly typed bodies, headers and uploads, written byte for byte on
  the wire, through the gateway and straight to the service: each answer is a problem+json 4xx
  with the precise detail, never a 5xx, and nothing of them is stored;
- S3 notifications that are not JSON, of the wrong shape, or of objects that do not exist, sent
  straight to the upload service's queue, end in the dead-letter queue within seconds (a test
  event and another bucket's object are deleted as harmless); the worker keeps running, a good
  upload goes through afterwards, and nothing of them reaches Kafka or the product database;
- an outbox row of an unknown event type is logged and skipped by the real consumer, whose
  group commits past it, and a later real event on the same partition is applied.

The number of bad inputs tried is printed at the end (run with -s)."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from security.scene import PROBLEM, any_address

from bmt_common.inputs import NUL_MESSAGE
from bmt_stack.config import HOST, StackSettings
from support import PNG, Client, Mailbox, eventually, sqs_queue_empty

STATUSES: list[int] = []


@pytest.fixture(scope="module", autouse=True)
def summary(figure: Callable[[str], None]) -> Any:
    yield
    errors = sum(status >= 500 for status in STATUSES)
    figure(f"\n[bad input] {len(STATUSES)} malformed requests, {errors} server errors")


@dataclass
class Wire:
    status: int
    headers: dict[str, str]
    body: Any

    def detail(self) -> str | None:
        """The detail of a problem+json answer of this status; None for anything else."""
        if not self.headers.get("content-type", "").startswith(PROBLEM):
            return None
        if not isinstance(self.body, dict) or self.body.get("status") != self.status:
            return None
        return str(self.body["detail"])


async def send(port: int, head: bytes, body: bytes = b"") -> Wire:
    """One request written as given (so nothing a client library would fix on the way),
    answered on a connection of its own."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    top, _, payload = raw.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if headers.get("transfer-encoding") == "chunked":
        payload = _dechunk(payload)
    STATUSES.append(status)
    try:
        return Wire(status, headers, json.loads(payload))
    except ValueError:
        return Wire(status, headers, payload)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + rest[:size], rest[size + 2 :]


def request(
    method: str,
    path: str,
    *headers: tuple[str, str | bytes],
    body: bytes = b"",
    content_type: str | None = None,
    token: str | None = None,
) -> tuple[bytes, bytes]:
    """The head and body of a request; Content-Length from the body unless given."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: bmt", b"Connection: close"]
    lines.append(f"X-Forwarded-For: {any_address()}".encode())
    if token:
        lines.append(f"Authorization: Bearer {token}".encode())
    if content_type:
        lines.append(f"Content-Type: {content_type}".encode())
    if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in headers):
        lines.append(f"Content-Length: {len(body)}".encode())
    for name, value in headers:
        lines.append(
            name.encode() + b": " + (value if isinstance(value, bytes) else value.encode())
        )
    return b"\r\n".join(lines) + b"\r\n", body


def multipart(
    *parts: tuple[list[str], bytes], boundary: str = "bad-input", end: bool = True
) -> bytes:
    body = b""
    for headers, content in parts:
        body += f"--{boundary}\r\n".encode()
        body += "".join(f"{h}\r\n" for h in headers).encode() + b"\r\n" + content + b"\r\n"
    return body + (f"--{boundary}--\r\n".encode() if end else b"")


def field(name: str, value: str | bytes) -> tuple[list[str], bytes]:
    content = value.encode() if isinstance(value, str) else value
    return [f'Content-Disposition: form-data; name="{name}"'], content


def upload(name: str, content: bytes, kind: str = "image/png") -> tuple[list[str], bytes]:
    disposition = f'Content-Disposition: form-data; name="{name}"; filename="{name}.bin"'
    return [disposition, f"Content-Type: {kind}"], content


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def service_port(settings: StackSettings, service: str) -> int:
    return int(getattr(settings, f"port_{service}"))


# Bodies --------------------------------------------------------------------------------------

LOGIN = "/v1/auth/login"
JSON = "application/json"


def body_cases(title: str) -> list[tuple[str, str, str, dict[str, Any], int, str]]:
    """(case, service, path, request options, status, detail): JSON bodies of every kind of
    wrong, at the user service's login and the product's film import (admin)."""
    film = {
        "title": title,
        "release_date": "2026-12-01",
        "duration_minutes": 90,
        "age_rating": "P",
        "genres": ["drama"],
    }
    put = ("PUT", f"/v1/films/by-key/bad-input.{title.split()[-1]}")
    too_big = json.dumps({**film, "description": "x" * (2 * 1024 * 1024)}).encode()
    return [
        ("not JSON", "user", LOGIN, {"body": b"{not json", "content_type": JSON}, 400,
         "The body is not valid JSON"),
        ("empty body", "user", LOGIN, {"body": b"", "content_type": JSON}, 400,
         "The body is not valid JSON"),
        ("not UTF-8", "user", LOGIN, {"body": b'{"email": "\xff\xfe"}', "content_type": JSON},
         400, "The body is not valid JSON"),
        ("an array, not an object", "user", LOGIN, {"body": b"[1, 2]", "content_type": JSON},
         422, "The body is invalid: it should be an object"),
        ("a string, not an object", "user", LOGIN, {"body": b'"login"', "content_type": JSON},
         422, "The body is invalid: it should be an object"),
        ("text/plain", "user", LOGIN, {"body": b"{}", "content_type": "text/plain"}, 415,
         "The body must be application/json, not 'text/plain'"),
        ("no Content-Type", "user", LOGIN, {"body": b"{}"}, 415,
         "The body must be application/json, not 'application/octet-stream'"),
        ("over the 1 MiB limit", "user", LOGIN,
         {"body": b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}', "content_type": JSON},
         413, "The JSON body is larger than the limit of 1048576 bytes"),
        ("a NUL in the e-mail", "user", LOGIN,
         {"body": b'{"email": "a\\u0000@b.co", "password": "p"}', "content_type": JSON},
         422, "The body is invalid: email: Text must not contain the NUL character (U+0000)"),
        ("gzip that is not gzip", "user", LOGIN,
         {"body": b"hello", "content_type": JSON, "headers": [("Content-Encoding", "gzip")]},
         400, "The body cannot be read: Can not decode content-encoding: gzip"),
        ("a gzip bomb (50 MiB inflated)", "user", LOGIN,
         {"body": gzip.compress(b'{"email": "' + b"a" * (50 * 1024 * 1024) + b'"}'),
          "content_type": JSON, "headers": [("Content-Encoding", "gzip")]},
         413, "The JSON body is larger than the limit of 1048576 bytes"),
        ("a string for an int", "product", put[1],
         {"method": put[0], "admin": True, "content_type": JSON,
          "body": json.dumps({**film, "duration_minutes": "ninety"}).encode()},
         422, "The body is invalid: duration_minutes: Input should be a valid integer, unable to"
         " parse string as an integer"),
        ("an int too large for the database", "product", put[1],
         {"method": put[0], "admin": True, "content_type": JSON,
          "body": json.dumps({**film, "duration_minutes": 2**70}).encode()},
         422, "The body is invalid: duration_minutes: Input should be less than or equal to 600"),
        # The product takes 110 MiB uploads; its JSON still stops at 1 MiB.
        ("JSON over 1 MiB where uploads may be 110 MiB", "product", put[1],
         {"method": put[0], "admin": True, "content_type": JSON, "body": too_big},
         413, "The JSON body is larger than the limit of 1048576 bytes"),
        ("a NUL in the title", "product", put[1],
         {"method": put[0], "admin": True, "content_type": JSON,
          "body": json.dumps({**film, "title": "a\x00b"}).encode()},
         422, "The body is invalid: title: Text must not contain the NUL character (U+0000)"),
        ("a NUL in the path", "product", "/v1/films/by-key/a%00b",
         {"method": "GET"}, 400, "The path must not contain the NUL character (%00)"),
    ]  # fmt: skip


async def test_bad_json_bodies_are_precise_problems_and_store_nothing(
    admin: Client,
    bmt_platform: StackSettings,
    gateway: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    title = f"Bad input {unique}"
    failures = []
    for case, service, path, options, status, detail in body_cases(title):
        for port in (port_of(gateway), service_port(bmt_platform, service)):
            head, body = request(
                options.get("method", "POST"),
                path,
                *options.get("headers", []),
                body=options.get("body", b""),
                content_type=options.get("content_type"),
                token=admin.token if options.get("admin") else None,
            )
            got = await send(port, head, body)
            if got.status != status or got.detail() != detail:
                failures.append(f"{case} at :{port}: {got.status} {got.body!r:.300}")
            elif "NUL" in case and "path" not in case:
                assert got.body["errors"][0]["message"] == NUL_MESSAGE
    assert not failures, "\n".join(failures)
    assert await films_of(db, unique) == 0


# Uploads -------------------------------------------------------------------------------------

FILM_FIELDS = {
    "release_date": "2026-12-01",
    "duration_minutes": "100",
    "age_rating": "T13",
    "genres": "drama",
}
MULTIPART = "multipart/form-data; boundary=bad-input"


def upload_cases(title: str) -> list[tuple[str, bytes, str, int, str]]:
    """(case, body, Content-Type, status, detail) for POST /v1/films."""
    fields = [field("title", title), *(field(k, v) for k, v in FILM_FIELDS.items())]
    return [
        ("the title part missing", multipart(*fields[1:]), MULTIPART, 422,
         "The form is invalid: title: is required"),
        ("the poster sent as text", multipart(*fields, field("poster", "a picture")), MULTIPART,
         422, "The form is invalid: poster: is not a field of this request"),
        ("an image as the trailer", multipart(*fields, upload("trailer", PNG)), MULTIPART, 415,
         "trailer must be one of video/mp4, video/webm (judged by its content)"),
        ("a file in an unknown part", multipart(*fields, upload("avatar", PNG)), MULTIPART, 422,
         "Unexpected file field 'avatar'; expected ['poster', 'trailer']"),
        ("a 20 kB title", multipart(field("title", "t" * 20_000), *fields[1:]), MULTIPART, 413,
         "Field 'title' is longer than 16384 bytes"),
        ("cut off before the closing boundary",
         multipart(*fields, upload("poster", PNG), end=False), MULTIPART, 400,
         "The multipart body cannot be read: it ends before its closing boundary"),
        ("no boundary parameter", multipart(*fields), "multipart/form-data", 400,
         "The multipart body cannot be read: boundary missed for Content-Type: "
         "multipart/form-data"),
        ("not multipart at all", b"just text", MULTIPART, 400,
         "The multipart body cannot be read: Could not find starting boundary b'--bad-input'"),
        ("a part with no name", multipart(*fields, (["Content-Type: text/plain"], b"x")),
         MULTIPART, 400, "Each part needs a Content-Disposition header with a name"),
        ("40 parts", multipart(*fields, *(field(f"x{n}", "y") for n in range(35))), MULTIPART,
         413, "The form has more than 32 parts"),
        ("a text part not UTF-8", multipart(field("title", b"\xff\xfe"), *fields[1:]),
         MULTIPART, 400, "The multipart body cannot be read: a text field is not UTF-8"),
        ("a NUL in a text part", multipart(field("title", "a\x00b"), *fields[1:]), MULTIPART,
         422, "The form is invalid: title: Text must not contain the NUL character (U+0000)"),
        ("JSON to a form route", b"{}", JSON, 415,
         "The body must be multipart/form-data, not 'application/json'"),
        ("a URL-encoded form over 64 KiB", b"title=" + b"a" * 70_000,
         "application/x-www-form-urlencoded", 413,
         "The form is larger than the limit of 65536 bytes"),
        ("a URL-encoded form not UTF-8", b"title=%FF%FE", "application/x-www-form-urlencoded",
         400, "The form is not URL-encoded UTF-8"),
    ]  # fmt: skip


async def test_bad_uploads_are_precise_problems_and_store_nothing(
    admin: Client,
    bmt_platform: StackSettings,
    gateway: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    title = f"Bad input {unique}"
    failures = []
    for case, body, content_type, status, detail in upload_cases(title):
        for port in (port_of(gateway), service_port(bmt_platform, "product")):
            head, payload = request(
                "POST", "/v1/films", body=body, content_type=content_type, token=admin.token
            )
            got = await send(port, head, payload)
            if got.status != status or got.detail() != detail:
                failures.append(f"{case} at :{port}: {got.status} {got.body!r:.300}")
    assert not failures, "\n".join(failures)
    assert await films_of(db, unique) == 0


async def films_of(db: Callable[[str], Awaitable[asyncpg.Connection]], unique: str) -> int:
    """Films of this test's bad input that were stored anyway (by title or external key)."""
    conn = await db("bmt_product")
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM films WHERE title LIKE $1 OR external_key LIKE $1",
                f"%{unique}%",
            )
        )
    finally:
        await conn.close()


# Headers -------------------------------------------------------------------------------------


def header_cases(token: str) -> list[tuple[str, bytes, int, str]]:
    """(case, request head, status, detail): headers no client should send."""
    me = "/v1/users/me"

    def get(path: str, *headers: tuple[str, str | bytes]) -> bytes:
        return request("GET", path, *headers)[0]

    return [
        ("a 20 kB Authorization header", get(me, ("Authorization", "Bearer " + "a" * 20_000)),
         431, "The request line or a header is longer than 8190 bytes"),
        ("an 8 kB token", get(me, ("Authorization", "Bearer " + "a" * 8_000)), 401,
         "The access token is not valid: it is not a JWT"),
        ("Bearer and nothing", get(me, ("Authorization", "Bearer")), 401,
         "This route needs a bearer access token"),
        ("Bearer and blanks", get(me, ("Authorization", "Bearer    ")), 401,
         "This route needs a bearer access token"),
        ("Basic credentials", get(me, ("Authorization", "Basic YWRtaW46YWRtaW4=")), 401,
         "This route needs a bearer access token"),
        ("three dots of nothing", get(me, ("Authorization", "Bearer a.b.c")), 401,
         "The access token is not valid: it is not a JWT"),
        ("a token with non-ASCII bytes",
         get(me, ("Authorization", b"Bearer \xc3\xa9\xff." + token.encode())), 401,
         "The access token is not valid: it is not a JWT"),
        ("a real token twice", get(me, ("Authorization", f"Bearer {token} {token}")), 401,
         "The access token is not valid: it is not a JWT"),
        ("a 20 kB X-Request-Id", get(me, ("X-Request-Id", "r" * 20_000)), 431,
         "The request line or a header is longer than 8190 bytes"),
        ("200 headers", get(me, *((f"X-Filler-{n}", "x") for n in range(200))), 431,
         "The request has more than 128 headers"),
        ("a control character in a header", get(me, ("X-Note", b"a\x01b")), 400,
         "The request is not valid HTTP: Invalid header value char:"),
        ("a 20 kB URL", get("/v1/films?q=" + "a" * 20_000), 431,
         "The request line or a header is longer than 8190 bytes"),
        ("a Content-Length that is not a number",
         request("POST", LOGIN, ("Content-Length", "ten"), content_type=JSON)[0], 400,
         "The request is not valid HTTP: Invalid character in Content-Length:"),
        ("both Content-Length and chunked",
         request("POST", LOGIN, ("Content-Length", "2"), ("Transfer-Encoding", "chunked"))[0],
         400, "The request is not valid HTTP: Transfer-Encoding can't be present with "
         "Content-Length:"),
    ]  # fmt: skip


async def test_absurd_headers_are_precise_problems(
    admin: Client, bmt_platform: StackSettings, gateway: str
) -> None:
    assert admin.token
    failures = []
    for case, head, status, detail in header_cases(admin.token):
        for port in (port_of(gateway), service_port(bmt_platform, "user")):
            got = await send(port, head)
            if got.status != status or got.detail() != detail:
                failures.append(f"{case} at :{port}: {got.status} {got.body!r:.300}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "request_id",
    [b"r" * 7000, "caf\u00e9-\u00fcber-id".encode(), b"\xff\xfe-bytes-id", b"short"],
    ids=["7 kB", "UTF-8", "not UTF-8", "too short"],
)
async def test_an_unfit_request_id_is_replaced_not_echoed(
    bmt_platform: StackSettings, gateway: str, request_id: bytes
) -> None:
    for port in (port_of(gateway), service_port(bmt_platform, "product")):
        got = await send(port, request("GET", "/v1/films?limit=1", ("X-Request-Id", request_id))[0])
        assert got.status == 200, got
        assert re.fullmatch(r"[0-9a-f]{32}", got.headers["x-request-id"]), got.headers


async def test_the_platform_is_whole_after_the_bad_input(
    bmt_platform: StackSettings, http: aiohttp.ClientSession, client: Client
) -> None:
    for service in ("gateway", "user", "product", "upload"):
        port = service_port(bmt_platform, service)
        async with http.get(f"http://{HOST}:{port}/health/ready") as response:
            assert response.status == 200, (service, await response.text())
    status, films = await client.call("GET", "/v1/films", params={"limit": "1"})
    assert status == 200, films


# S3 notifications ----------------------------------------------------------------------------

QUEUE, DEAD_LETTERS, BUCKET = "bmt-media-uploads", "bmt-media-uploads-dlq", "bmt-media"


@pytest.fixture
async def sqs(aws_endpoint: str) -> AsyncIterator[Any]:
    async with aioboto3.Session().client(
        "sqs",
        endpoint_url=aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="bmt",
        aws_secret_access_key="bmt",
    ) as client:
        yield client


def created(bucket: str, key: str, marker: str) -> str:
    """An SNS envelope of an S3 ObjectCreated notification, as the topic delivers it."""
    record = {
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "sequencer": marker}},
    }
    return json.dumps({"TopicArn": "arn:aws:sns:us-east-1:0:bmt-media-events",
                       "Message": json.dumps({"Records": [record]}), "Marker": marker})  # fmt: skip


def poison(marker: str, missing: str = "") -> dict[str, str]:
    """Messages no retry can help, by what is wrong with them; each carries the marker.
    `missing` is the key of a media object that does not exist."""

    def envelope(message: Any) -> str:
        return json.dumps({"TopicArn": "t", "Message": message, "Marker": marker})

    return {
        "not JSON": f"not json at all {marker}",
        "JSON, not an object": json.dumps([marker]),
        "the SNS message not JSON": envelope(f"{{{marker}"),
        "Records not a list": envelope(json.dumps({"Records": marker})),
        "a record not an object": envelope(json.dumps({"Records": [marker]})),
        "s3 a string": envelope(
            json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": marker}]})
        ),
        "a key that is a number": envelope(
            json.dumps(
                {
                    "Records": [
                        {
                            "eventName": "ObjectCreated:Put",
                            "s3": {"bucket": {"name": BUCKET}, "object": {"key": 7}},
                        }
                    ],
                    "Marker": marker,
                }
            )
        ),
        "an object that does not exist": created(BUCKET, missing, marker),
    }


async def dead_lettered(
    sqs: Any, url: str, markers: set[str], found: dict[str, str]
) -> bool | None:
    """Collects (and deletes) the dead letters carrying one of `markers`; True once all are."""
    got = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for message in got.get("Messages", []):
        for marker in markers:
            if marker in message["Body"]:
                found[marker] = message["Body"]
                await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return True if set(found) == markers else None


async def test_poison_notifications_are_dead_lettered_and_the_worker_goes_on(
    sqs: Any,
    admin: Client,
    client: Client,
    kafka_bootstrap: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    figure: Callable[[str], None],
) -> None:
    queue = (await sqs.get_queue_url(QueueName=QUEUE))["QueueUrl"]
    dlq = (await sqs.get_queue_url(QueueName=DEAD_LETTERS))["QueueUrl"]
    missing = f"films/{10**17 + 7}/poster-{uuid.uuid4().hex}.png"
    bodies = {
        f"{unique}-{n}": poison(f"{unique}-{n}", missing)[name]
        for n, name in enumerate(poison("", missing))
    }
    # Harmless, and deleted: S3's test event, and an object of a bucket that is not the media's.
    other_key = f"films/1/poster-{uuid.uuid4().hex}.png"
    harmless = {
        f"{unique}-test-event": json.dumps(
            {"TopicArn": "t", "Message": json.dumps({"Event": "s3:TestEvent", "Bucket": BUCKET}),
             "Marker": f"{unique}-test-event"}
        ),
        f"{unique}-other-bucket": created("someone-elses", other_key, f"{unique}-other-bucket"),
    }  # fmt: skip
    for body in [*bodies.values(), *harmless.values()]:
        await sqs.send_message(QueueUrl=queue, MessageBody=body)
    found: dict[str, str] = {}
    await eventually(
        lambda: dead_lettered(sqs, dlq, set(bodies), found), 60, "the poison in the DLQ"
    )
    assert found == bodies  # each as sent, and no harmless one among them

    await eventually(
        lambda: sqs_queue_empty(sqs, queue), 60, "the media queue empty (the harmless deleted)"
    )
    leftover: dict[str, str] = {}
    await dead_lettered(sqs, dlq, set(harmless), leftover)
    assert leftover == {}

    # The worker is still there: a good upload after the poison goes through.
    form = aiohttp.FormData()
    for name, value in {"name": f"After poison {unique}", "kind": "food", "price": "1"}.items():
        form.add_field(name, value)
    form.add_field("image", PNG, filename="i.png", content_type="image/png")
    status, fab = await admin.call("POST", "/v1/fabs", data=form)
    assert status == 201, fab

    async def image() -> str | None:
        _, body = await client.call("GET", f"/v1/fabs/{fab['id']}")
        return body["image_url"] or None

    good_key = (await eventually(image, 30, "the image after the poison")).split(f"/{BUCKET}/")[1]
    # Nothing of the bad or the other bucket's reached Kafka: the good record is there, after.
    keys = await media_keys(kafka_bootstrap, until=good_key)
    assert missing not in keys
    assert other_key not in keys
    conn = await db("bmt_product")
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM media WHERE key = any($1::text[])", [missing, other_key]
        )
    finally:
        await conn.close()
    assert stored == 0
    figure(f"\n[bad input] {len(bodies)} poison S3 notifications dead-lettered, 2 harmless deleted")


async def media_keys(bootstrap: str, until: str) -> list[str]:
    """The object keys on bmt.media-uploaded, read from the start until `until` shows up."""
    reader = AIOKafkaConsumer(
        "bmt.media-uploaded", bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    keys: list[str] = []
    try:

        async def reached() -> bool | None:
            for batch in (await reader.getmany(timeout_ms=500)).values():
                keys.extend(json.loads(r.value)["payload"]["key"] for r in batch)
            return True if until in keys else None

        await eventually(reached, 30, f"{until} on bmt.media-uploaded")
    finally:
        await reader.stop()
    return keys


# Debezium events of an unknown type ----------------------------------------------------------

OUTBOX_TOPIC = "bmt_user.public.outboxes"  # consumed by the mail service, group bmt-mail


async def record_of(
    bootstrap: str, row_id: int, since: dict[TopicPartition, int]
) -> tuple[TopicPartition, int]:
    """Where the change event of outbox row `row_id` landed (read from `since` on)."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign(list(since))
        for partition, offset in since.items():
            reader.seek(partition, offset)

        async def landed() -> tuple[TopicPartition, int] | None:
            for partition, batch in (await reader.getmany(timeout_ms=500)).items():
                for r in batch:
                    if r.value and (json.loads(r.value).get("after") or {}).get("id") == row_id:
                        return partition, r.offset
            return None

        return await eventually(landed, 30, f"outbox row {row_id} on Kafka")
    finally:
        await reader.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    probe = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)  # subscribed: metadata at start
    await probe.start()
    try:
        partitions = [TopicPartition(topic, p) for p in probe.partitions_for_topic(topic) or ()]
        return dict(await probe.end_offsets(partitions))
    finally:
        await probe.stop()


async def test_an_unknown_event_type_is_skipped_and_committed_past(
    bmt_platform: StackSettings,
    kafka_bootstrap: str,
    client: Client,
    mailbox: Mailbox,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    email = f"unknown-event-{unique}@example.com"
    kind = f"film_rated_{unique}"  # unknown to every service, and unique in the logs
    since = await end_offsets(kafka_bootstrap, OUTBOX_TOPIC)
    assert since, f"{OUTBOX_TOPIC} has no partitions"
    conn = await db("bmt_user")
    try:
        # Keyed (aggregate_id) like the real event that follows: the same partition, before it.
        unknown_id = await conn.fetchval(
            "INSERT INTO outboxes (aggregate_type, aggregate_id, event_type, payload)"
            " VALUES ('email', $1, $2, '{\"stars\": 5}') RETURNING id",
            email,
            kind,
        )
    finally:
        await conn.close()
    where, offset = await record_of(kafka_bootstrap, unknown_id, since)

    status, _ = await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    assert status == 202
    await mailbox.wait_for(email)  # the mail service applied the later, real event
    conn = await db("bmt_user")
    try:
        otp_id = await conn.fetchval(
            "SELECT id FROM outboxes WHERE aggregate_id = $1 AND event_type = 'otp_requested'",
            email,
        )
    finally:
        await conn.close()
    otp_where, otp_offset = await record_of(kafka_bootstrap, otp_id, since)
    assert (otp_where, otp_offset > offset) == (where, True)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:

        async def committed_past() -> int | None:
            done = (await admin.list_consumer_group_offsets("bmt-mail")).get(where)
            return done.offset if done is not None and done.offset > otp_offset else None

        committed = await eventually(committed_past, 30, "bmt-mail committed past both")
    finally:
        await admin.close()
    assert committed > offset

    conn = await db("bmt_mail")
    try:
        applied = {
            r["event_id"]
            for r in await conn.fetch(
                "SELECT event_id FROM applied_events WHERE source = $1 AND event_id = any($2)",
                OUTBOX_TOPIC,
                [str(unknown_id), str(otp_id)],
            )
        }
    finally:
        await conn.close()
    assert applied == {str(otp_id)}
    log = Path(bmt_platform.logs) / "mail.log"

    async def logged() -> bool | None:
        return True if f"skipping unknown event type '{kind}'" in log.read_text() else None

    await eventually(logged, 10, "the skip in the mail service's log")
