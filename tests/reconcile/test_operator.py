"""The operator against the real API server and the real services."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aioboto3
import aiohttp
import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from bmt_stack.components.services import Service, service_components
from bmt_stack.config import HOST, StackSettings
from crs import cinema, film, showtime
from kube import Kube
from support import Client, aws_options, eventually


def later(days: int = 3, minutes: int = 0) -> str:
    moment = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return (moment + dt.timedelta(days=days, minutes=minutes)).isoformat()


async def test_the_examples_become_ready_and_bookable(
    kube: Kube, make_user: Callable[..., Awaitable[Client]]
) -> None:
    platform = await kube.condition("platform", "bmt", "default")
    assert platform["status"]["media"]["queueUrl"].endswith("/bmt-media-uploads")
    assert "bmt_order.public.outboxes" in platform["status"]["topics"]
    assert set(platform["status"]["connectors"].values()) == {"RUNNING"}
    assert platform["status"]["mail"] == {"sender": "no-reply@bmt.local", "verification": "Success"}
    await kube.condition("cinema", "landmark", "default")
    mai = await kube.condition("film", "mai", "default")

    async def media() -> dict[str, Any] | None:
        found = await asyncio.to_thread(kube.get, "film", "mai", "default")
        ready = found is not None and found.get("status", {}).get("media") == "ready"
        return found if ready else None

    mai = await eventually(media, 60, "the film's media URLs")
    assert mai["status"]["posterUrl"].startswith("http://")
    evening = await kube.condition("showtime", "mai-room1-evening", "default", reason="Released")
    customer = await make_user()
    showtime_id = evening["status"]["showtimeId"]

    async def seats() -> dict[str, Any] | None:
        status, body = await customer.call("GET", f"/v1/showtimes/{showtime_id}/seats")
        return dict(body) if status == 200 else None

    seat_map = await eventually(seats, 30, "the seat map")
    free = [
        s for s in seat_map["seats"] if s["status"] == "available" and s["seat_type"] != "couple"
    ]
    status, order = await customer.call(
        "POST", "/v1/orders", json={"showtime_id": showtime_id, "seats": [free[0]["seat_id"]]}
    )
    assert status == 201, order
    columns = kube.run("get", "films", "-n", "default").stdout.splitlines()[0].split()
    assert columns[:5] == ["NAME", "TITLE", "READY", "MEDIA", "AGE"]


async def test_an_update_reaches_the_service_and_the_generation_follows(
    kube: Kube, namespace: str, client: Client
) -> None:
    kube.apply(film("f1", namespace))
    first = await kube.condition("film", "f1", namespace)
    kube.apply(film("f1", namespace, title="Renamed", durationMinutes=101))

    async def followed() -> dict[str, Any] | None:
        found = await asyncio.to_thread(kube.get, "film", "f1", namespace)
        ready = (
            next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
            if found
            else None
        )
        if found and ready and ready["observedGeneration"] == found["metadata"]["generation"] > 1:
            return found
        return None

    updated = await eventually(followed, 60, "observedGeneration to follow the update")
    assert updated["metadata"]["generation"] > first["metadata"]["generation"]
    status, body = await client.call("GET", f"/v1/films/{updated['status']['filmId']}")
    assert status == 200
    assert (body["title"], body["duration_minutes"]) == ("Renamed", 101)


async def reconciles(http: aiohttp.ClientSession, settings: StackSettings) -> dict[str, float]:
    """The operator's Prometheus counters of Showtime reconciles, by result."""
    async with http.get(f"http://{HOST}:{settings.port_operator_metrics}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "bmt_operator_reconciles_total"
                and sample.labels["kind"] == "Showtime"
            ):
                found[sample.labels["result"]] = sample.value
            if sample.name == "bmt_operator_reconcile_seconds_count":
                found[f"timed {sample.labels['kind']}"] = sample.value
    return found


async def test_a_showtime_waits_for_its_film_and_recovers(
    kube: Kube, namespace: str, http: aiohttp.ClientSession, bmt_platform: StackSettings
) -> None:
    before = await reconciles(http, bmt_platform)
    kube.apply(cinema("c1", namespace), showtime("s1", namespace, later()))
    waiting = await kube.condition(
        "showtime", "s1", namespace, reason="FilmNotFound", ready="False"
    )
    assert "Film 'f1' is missing" in next(
        c["message"] for c in waiting["status"]["conditions"] if c["type"] == "Ready"
    )
    kube.apply(film("f1", namespace))
    ready = await kube.condition("showtime", "s1", namespace, reason="Released", within=90)
    assert ready["status"]["showtimeId"]
    events = kube.run(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=s1"
    ).stdout
    assert "FilmNotFound" in events
    assert "Released" in events
    # The operator's metrics saw both: a retry while the film was missing, then a success.
    after = await reconciles(http, bmt_platform)
    assert after.get("retry", 0) > before.get("retry", 0)
    assert after["ready"] > before.get("ready", 0)
    assert after["timed Showtime"] >= before.get("timed Showtime", 0) + 2


async def test_deletion_policies(kube: Kube, namespace: str, client: Client) -> None:
    kube.apply(cinema("kept", namespace, "Retain"), cinema("gone", namespace, "Delete"))
    kept = await kube.condition("cinema", "kept", namespace)
    gone = await kube.condition("cinema", "gone", namespace)
    kube.run("delete", "cinema", "kept", "gone", "-n", namespace, "--timeout=60s")
    assert (await client.call("GET", f"/v1/cinemas/{kept['status']['cinemaId']}"))[0] == 200
    assert (await client.call("GET", f"/v1/cinemas/{gone['status']['cinemaId']}"))[0] == 404


async def test_a_film_in_use_is_not_deleted(kube: Kube, namespace: str) -> None:
    kube.apply(
        cinema("c1", namespace),
        film("f1", namespace, "Delete"),
        showtime("s1", namespace, later(4)),
    )
    await kube.condition("showtime", "s1", namespace, reason="Released", within=90)
    kube.run("delete", "film", "f1", "-n", namespace, "--wait=false")
    blocked = await kube.condition("film", "f1", namespace, reason="InUse", ready="False")
    assert "showtimes s1 use this film" in next(
        c["message"] for c in blocked["status"]["conditions"] if c["type"] == "Ready"
    )
    kube.run("delete", "showtime", "s1", "-n", namespace, "--timeout=60s")

    async def gone() -> bool | None:
        return True if await asyncio.to_thread(kube.get, "film", "f1", namespace) is None else None

    await eventually(gone, 60, "the film to go once unused")


async def test_drift_is_repaired(
    kube: Kube, bmt_platform: StackSettings, kafka_bootstrap: str
) -> None:
    kube.run("annotate", "platform", "bmt", "bmt.dev/drift-interval-seconds=1", "--overwrite")
    aws = aws_options(bmt_platform)
    try:
        async with aioboto3.Session().client("sqs", **aws) as sqs:
            url = (await sqs.get_queue_url(QueueName="bmt-media-uploads-dlq"))["QueueUrl"]
            await sqs.delete_queue(QueueUrl=url)

            async def queue_back() -> bool | None:
                listed = await sqs.list_queues(QueueNamePrefix="bmt-media-uploads-dlq")
                return True if listed.get("QueueUrls") else None

            await eventually(queue_back, 60, "the dead-letter queue to come back")
        async with aioboto3.Session().client("ses", **aws) as ses:
            # Without its identity the mail service could send nothing.
            await ses.delete_identity(Identity="no-reply@bmt.local")

            async def sender_back() -> bool | None:
                listed = await ses.list_identities()
                return True if "no-reply@bmt.local" in listed["Identities"] else None

            await eventually(sender_back, 60, "the mail sender's identity to come back")
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(["bmt_mail.public.outboxes"])

            async def topic_back() -> bool | None:
                return True if "bmt_mail.public.outboxes" in await admin.list_topics() else None

            await eventually(topic_back, 60, "the topic to come back")
        finally:
            await admin.close()
    finally:
        kube.run("annotate", "platform", "bmt", "bmt.dev/drift-interval-seconds-")


async def test_a_killed_operator_converges_without_duplicates(
    kube: Kube,
    namespace: str,
    bmt_platform: StackSettings,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    kube.apply(cinema("c1", namespace), film("f1", namespace))
    await kube.condition("film", "f1", namespace)
    await kube.condition("cinema", "c1", namespace)
    operator = next(c for c in service_components(bmt_platform) if c.name == "operator")
    assert isinstance(operator, Service)
    kube.apply(*(showtime(f"s{i}", namespace, later(5, minutes=130 * i)) for i in range(20)))
    pid = operator.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # in the middle of reconciling twenty showtimes
    await asyncio.to_thread(operator.up)
    for i in range(20):
        await kube.condition("showtime", f"s{i}", namespace, reason="Released", within=120)
    conn = await db("bmt_showtime")
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM showtimes WHERE external_key LIKE $1", f"{namespace}.%"
        )
    finally:
        await conn.close()
    assert rows == 20
