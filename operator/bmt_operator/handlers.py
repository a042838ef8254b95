"""The Kopf handlers: one reconcile function per kind, run on create, update, resume and by a
drift timer; delete handlers honour `spec.deletionPolicy`. Every step is idempotent: the
operator may die anywhere and run it again."""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from bmt_operator import provision
from bmt_operator.conditions import conditions
from bmt_operator.services import Refused, Services, Unavailable
from bmt_operator.settings import OperatorSettings

GROUP, VERSION = "bmt.dev", "v1alpha1"
DRIFT_ANNOTATION = "bmt.dev/drift-interval-seconds"
SETTINGS = OperatorSettings()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.INFO  # what the operator did shows as Kubernetes Events
    settings.persistence.finalizer = "bmt.dev/finalizer"
    settings.watching.server_timeout = 60
    memo.services = Services(SETTINGS)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    await memo.services.close()


def key(namespace: str | None, name: str | None) -> str:
    """The external key of a resource in the services: `<namespace>.<name>`."""
    return f"{namespace}.{name}"


def _backoff(retry: int) -> float:
    return float(min(SETTINGS.retry_seconds * 2**retry, 300))


def _failed(
    patch: kopf.Patch, status: Any, generation: int, exc: Exception, retry: int
) -> kopf.TemporaryError:
    """Synced=False with the message; the caller raises the returned error to retry."""
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=False,
        reason="Unavailable",
        message=str(exc),
        synced=False,
        synced_reason="RetryingAfterError",
        synced_message=str(exc),
    )
    return kopf.TemporaryError(str(exc), delay=_backoff(retry))


def _refused(patch: kopf.Patch, status: Any, generation: int, reason: str, message: str) -> None:
    """Ready=False for a spec the world refuses: nothing to retry until the spec changes."""
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=False,
        reason=reason,
        message=message,
        synced=False,
        synced_reason=reason,
        synced_message=message,
    )


def _due(memo: kopf.Memo, meta: Any) -> bool:
    """Whether this resource's drift check is due (per-resource interval by annotation)."""
    raw = (meta.get("annotations") or {}).get(DRIFT_ANNOTATION)
    try:
        interval = float(raw) if raw else SETTINGS.drift_seconds
    except ValueError:
        interval = SETTINGS.drift_seconds
    last = memo.get("drift_at", 0.0)
    if time.monotonic() - last < interval:
        return False
    memo["drift_at"] = time.monotonic()
    return True


# Indices: what handlers need to know about other resources, kept by Kopf from its watches.
@kopf.index(GROUP, VERSION, "films")
def film_ids(
    namespace: str | None, name: str, status: Any, **_: Any
) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): (status or {}).get("filmId")}


@kopf.index(GROUP, VERSION, "cinemas")
def cinema_halls(
    namespace: str | None, name: str, status: Any, **_: Any
) -> dict[tuple[str | None, str], Any]:
    return {(namespace, name): (status or {}).get("hallNames")}


@kopf.index(GROUP, VERSION, "showtimes")
def showtimes_by_ref(
    namespace: str | None, name: str, spec: Any, **_: Any
) -> dict[tuple[str | None, str], str]:
    return {
        (namespace, f"film:{spec.get('filmRef')}"): name,
        (namespace, f"cinema:{spec.get('cinemaRef')}"): name,
    }


# Platform
def _endpoints() -> provision.Endpoints:
    s = SETTINGS
    return provision.Endpoints(
        kafka_bootstrap=s.kafka_bootstrap,
        connect_url=s.connect_url,
        aws_endpoint=s.aws_endpoint,
        aws_region=s.aws_region,
        aws_access_key_id=s.aws_access_key_id.get_secret_value(),
        aws_secret_access_key=s.aws_secret_access_key.get_secret_value(),
        postgres_host=s.postgres_host,
        postgres_port=s.postgres_port,
        postgres_user=s.postgres_user,
        postgres_password=s.postgres_password.get_secret_value(),
    )


def _plan(spec: Any) -> provision.Plan:
    media = spec.get("media") or {}
    kafka = spec.get("kafka") or {}
    databases = (spec.get("connectors") or {}).get("databases") or list(provision.DATABASES)
    return provision.Plan(
        media=provision.MediaWiring(
            bucket=media["bucket"],
            sns_topic=media.get("snsTopic", "bmt-media-events"),
            queue=media.get("queue", "bmt-media-uploads"),
            dead_letter_queue=media.get("deadLetterQueue", "bmt-media-uploads-dlq"),
            max_receives=int(media.get("maxReceives", 3)),
        ),
        partitions=int(kafka.get("partitions", 3)),
        retention_hours=int(kafka.get("retentionHours", 168)),
        databases=tuple(databases),
    )


async def reconcile_platform(
    spec: Any, meta: Any, status: Any, patch: kopf.Patch, retry: int, logger: Any
) -> None:
    plan, where, generation = _plan(spec), _endpoints(), meta.get("generation", 0)
    try:
        topics = await provision.ensure_topics(where, plan)
        media = await provision.ensure_media_wiring(where, plan.media)
        connectors = await provision.ensure_connectors(where, list(plan.databases))
    except Exception as exc:
        raise _failed(patch, status, generation, exc, retry) from None
    patch.status["media"] = media
    patch.status["topics"] = topics
    patch.status["connectors"] = connectors
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=True,
        reason="Provisioned",
        message=f"{len(topics)} topics, {len(connectors)} connectors, bucket {media['bucket']}",
    )
    logger.info(
        f"provisioned bucket {media['bucket']}, {len(topics)} topics, {len(connectors)} connectors"
    )


@kopf.on.resume(GROUP, VERSION, "platforms")
@kopf.on.create(GROUP, VERSION, "platforms")
@kopf.on.update(GROUP, VERSION, "platforms")
async def platform_changed(
    spec: Any, meta: Any, status: Any, patch: kopf.Patch, retry: int, logger: Any, **_: Any
) -> None:
    await reconcile_platform(spec, meta, status, patch, retry, logger)


@kopf.timer(
    GROUP,
    VERSION,
    "platforms",
    interval=SETTINGS.timer_tick_seconds,
    initial_delay=SETTINGS.timer_tick_seconds,
)
async def platform_drift(
    spec: Any, meta: Any, status: Any, patch: kopf.Patch, memo: kopf.Memo, logger: Any, **_: Any
) -> None:
    if _due(memo, meta):
        await reconcile_platform(spec, meta, status, patch, 0, logger)


@kopf.on.delete(GROUP, VERSION, "platforms")
async def platform_deleted(spec: Any, logger: Any, **_: Any) -> None:
    if spec.get("deletionPolicy", "Retain") != "Delete":
        logger.info("deletionPolicy Retain: bucket, queues, topics and connectors are kept")
        return
    plan, where = _plan(spec), _endpoints()
    await provision.delete_connectors(where, list(plan.databases))
    await provision.delete_topics(where, plan)
    await provision.delete_media_wiring(where, plan.media)
    logger.info("deleted connectors, topics, queues and bucket")


# Cinema
def cinema_bucket(namespace: str | None, name: str) -> str:
    return f"bmt-cinema-{namespace}-{name}"[:63].rstrip("-.").lower()


def _cinema_body(spec: Any) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "city": spec["city"],
        "address": spec["address"],
        "halls": [
            {
                "name": hall["name"],
                "rows": [
                    {
                        "label": r["label"],
                        "seats": r["seats"],
                        "seat_type": r.get("seatType", "standard"),
                        "price": r["price"],
                    }
                    for r in hall["rows"]
                ],
                "blocked": list(hall.get("blocked") or []),
            }
            for hall in spec["halls"]
        ],
    }


async def reconcile_cinema(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    logger: Any,
) -> None:
    services: Services = memo.services
    generation = meta.get("generation", 0)
    try:
        cinema = await services.put_cinema(key(namespace, name), _cinema_body(spec))
        bucket = cinema_bucket(namespace, name)
        async with provision.aws(_endpoints(), "sns") as sns:
            topic_arn = (await sns.create_topic(Name="bmt-media-events"))["TopicArn"]
        await provision.ensure_bucket_notifying(_endpoints(), bucket, topic_arn)
    except Refused as exc:
        _refused(patch, status, generation, "Refused", exc.detail)
        logger.warning(f"the showtime service refused the cinema: {exc.detail}")
        return
    except Unavailable as exc:
        raise _failed(patch, status, generation, exc, retry) from None
    patch.status["cinemaId"] = cinema["id"]
    patch.status["halls"] = len(cinema["halls"])
    patch.status["hallNames"] = [h["name"] for h in cinema["halls"]]
    patch.status["bucket"] = bucket
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=True,
        reason="Synced",
        message=f"cinema {cinema['id']} with {len(cinema['halls'])} halls; bucket {bucket}",
    )
    logger.info(f"cinema {cinema['id']} synced ({len(cinema['halls'])} halls)")


@kopf.on.resume(GROUP, VERSION, "cinemas")
@kopf.on.create(GROUP, VERSION, "cinemas")
@kopf.on.update(GROUP, VERSION, "cinemas")
async def cinema_changed(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    await reconcile_cinema(name, namespace, spec, meta, status, patch, retry, memo, logger)


@kopf.timer(
    GROUP,
    VERSION,
    "cinemas",
    interval=SETTINGS.timer_tick_seconds,
    initial_delay=SETTINGS.timer_tick_seconds,
)
async def cinema_drift(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    if _due(memo, meta):
        await reconcile_cinema(name, namespace, spec, meta, status, patch, 0, memo, logger)


@kopf.on.delete(GROUP, VERSION, "cinemas")
async def cinema_deleted(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **indices: Any,
) -> None:
    if spec.get("deletionPolicy", "Retain") != "Delete":
        logger.info("deletionPolicy Retain: the cinema's rows and bucket are kept")
        return
    users = sorted(indices["showtimes_by_ref"].get((namespace, f"cinema:{name}"), []))
    if users:
        message = f"showtimes {', '.join(users)} use this cinema; delete them first"
        _refused(patch, status, meta.get("generation", 0), "InUse", message)
        raise kopf.TemporaryError(message, delay=SETTINGS.retry_seconds * 2)
    services: Services = memo.services
    try:
        await services.delete_cinema(key(namespace, name))
    except Refused as exc:
        _refused(patch, status, meta.get("generation", 0), "InUse", exc.detail)
        raise kopf.TemporaryError(exc.detail, delay=SETTINGS.retry_seconds * 2) from None
    await provision.delete_bucket(_endpoints(), cinema_bucket(namespace, name))
    logger.info("deleted the cinema's rows and bucket")


# Film
def _film_body(spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": spec["title"],
        "description": spec.get("description", ""),
        "release_date": spec["releaseDate"],
        "duration_minutes": spec["durationMinutes"],
        "genres": list(spec.get("genres") or []),
        "age_rating": spec["ageRating"],
    }
    for slot in ("poster", "trailer"):
        source = spec.get(slot)
        if source:
            body[slot] = (
                {"url": source["url"]} if "url" in source else {"object_key": source["objectKey"]}
            )
    return body


def _film_status(patch: kopf.Patch, status: Any, generation: int, film: dict[str, Any]) -> None:
    patch.status["filmId"] = film["id"]
    patch.status["media"] = film["media_status"]
    patch.status["posterUrl"] = film["poster_url"]
    patch.status["trailerUrl"] = film["trailer_url"]
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=True,
        reason="Synced",
        message=f"film {film['id']}, media {film['media_status']}",
    )


async def reconcile_film(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    logger: Any,
) -> None:
    services: Services = memo.services
    generation = meta.get("generation", 0)
    try:
        film = await services.put_film(key(namespace, name), _film_body(spec))
    except Refused as exc:
        _refused(patch, status, generation, "Refused", exc.detail)
        logger.warning(f"the product service refused the film: {exc.detail}")
        return
    except Unavailable as exc:
        raise _failed(patch, status, generation, exc, retry) from None
    _film_status(patch, status, generation, film)
    logger.info(f"film {film['id']} synced, media {film['media_status']}")


@kopf.on.resume(GROUP, VERSION, "films")
@kopf.on.create(GROUP, VERSION, "films")
@kopf.on.update(GROUP, VERSION, "films")
async def film_changed(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    await reconcile_film(name, namespace, spec, meta, status, patch, retry, memo, logger)


@kopf.timer(
    GROUP,
    VERSION,
    "films",
    interval=SETTINGS.timer_tick_seconds,
    initial_delay=SETTINGS.timer_tick_seconds,
)
async def film_refresh(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    """Media URLs arrive after the pipeline ran: follow them until ready; repair drift."""
    if _due(memo, meta):
        await reconcile_film(name, namespace, spec, meta, status, patch, 0, memo, logger)
    elif (status or {}).get("media") != "ready" and (status or {}).get("filmId"):
        try:
            film = await memo.services.film(key(namespace, name))
        except (Refused, Unavailable):
            return  # the next tick tries again
        if film is not None:
            _film_status(patch, status, meta.get("generation", 0), film)


@kopf.on.delete(GROUP, VERSION, "films")
async def film_deleted(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **indices: Any,
) -> None:
    if spec.get("deletionPolicy", "Retain") != "Delete":
        logger.info("deletionPolicy Retain: the film's row and media are kept")
        return
    users = sorted(indices["showtimes_by_ref"].get((namespace, f"film:{name}"), []))
    if users:
        message = f"showtimes {', '.join(users)} show this film; delete them first"
        _refused(patch, status, meta.get("generation", 0), "InUse", message)
        raise kopf.TemporaryError(message, delay=SETTINGS.retry_seconds * 2)
    await memo.services.delete_film(key(namespace, name))
    logger.info("withdrew the film")


# Showtime
async def reconcile_showtime(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    film_ids: kopf.Index[tuple[str | None, str], Any],
    cinema_halls: kopf.Index[tuple[str | None, str], Any],
    logger: Any,
) -> None:
    services: Services = memo.services
    generation = meta.get("generation", 0)
    film = [i for i in film_ids.get((namespace, spec["filmRef"]), []) if i]
    if not film:
        message = f"Film {spec['filmRef']!r} is missing or not ready yet"
        _refused(patch, status, generation, "FilmNotFound", message)
        raise kopf.TemporaryError(message, delay=_backoff(min(retry, 3)))
    halls = [h for h in cinema_halls.get((namespace, spec["cinemaRef"]), []) if h]
    if not halls:
        message = f"Cinema {spec['cinemaRef']!r} is missing or not ready yet"
        _refused(patch, status, generation, "CinemaNotFound", message)
        raise kopf.TemporaryError(message, delay=_backoff(min(retry, 3)))
    if spec["hall"] not in halls[0]:
        _refused(
            patch,
            status,
            generation,
            "HallNotFound",
            f"Cinema {spec['cinemaRef']!r} has no hall {spec['hall']!r}",
        )
        return
    body = {
        "film_id": film[0],
        "cinema_key": key(namespace, spec["cinemaRef"]),
        "hall": spec["hall"],
        "starts_at": spec["startsAt"],
        "released": bool(spec.get("released", False)),
    }
    try:
        showtime = await services.put_showtime(key(namespace, name), body)
    except Refused as exc:
        reason = "Conflict" if exc.status == 409 else "Refused"
        _refused(patch, status, generation, reason, exc.detail)
        logger.warning(f"the showtime service refused the showtime: {exc.detail}")
        return
    except Unavailable as exc:
        raise _failed(patch, status, generation, exc, retry) from None
    patch.status["showtimeId"] = showtime["id"]
    patch.status["endsAt"] = showtime["ends_at"]
    patch.status["conditions"] = conditions(
        status,
        generation,
        ready=True,
        reason="Released" if showtime["released"] else "Scheduled",
        message=f"showtime {showtime['id']} until {showtime['ends_at']}",
    )
    logger.info(f"showtime {showtime['id']} synced (released: {showtime['released']})")


@kopf.on.resume(GROUP, VERSION, "showtimes")
@kopf.on.create(GROUP, VERSION, "showtimes")
@kopf.on.update(GROUP, VERSION, "showtimes")
async def showtime_changed(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    retry: int,
    memo: kopf.Memo,
    logger: Any,
    **indices: Any,
) -> None:
    await reconcile_showtime(
        name,
        namespace,
        spec,
        meta,
        status,
        patch,
        retry,
        memo,
        indices["film_ids"],
        indices["cinema_halls"],
        logger,
    )


@kopf.timer(
    GROUP,
    VERSION,
    "showtimes",
    interval=SETTINGS.timer_tick_seconds,
    initial_delay=SETTINGS.timer_tick_seconds,
)
async def showtime_seats(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **indices: Any,
) -> None:
    """Keeps the seat counters fresh; re-asserts the showtime when its drift check is due."""
    if _due(memo, meta):
        try:
            await reconcile_showtime(
                name,
                namespace,
                spec,
                meta,
                status,
                patch,
                0,
                memo,
                indices["film_ids"],
                indices["cinema_halls"],
                logger,
            )
        except kopf.TemporaryError:
            return
    showtime_id = (status or {}).get("showtimeId")
    if showtime_id and spec.get("released"):
        try:
            counts = await memo.services.seat_counts(int(showtime_id))
        except (Refused, Unavailable):
            return
        if counts is not None and counts != (status or {}).get("seats"):
            patch.status["seats"] = counts


@kopf.on.delete(GROUP, VERSION, "showtimes")
async def showtime_deleted(
    name: str,
    namespace: str | None,
    spec: Any,
    meta: Any,
    status: Any,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    if spec.get("deletionPolicy", "Retain") != "Delete":
        logger.info("deletionPolicy Retain: the showtime, its seats and orders are kept")
        return
    services: Services = memo.services
    showtime_id = (status or {}).get("showtimeId")
    counts = await services.seat_counts(int(showtime_id)) if showtime_id else None
    if counts and counts["sold"]:
        message = (
            f"{counts['sold']} tickets are sold; set deletionPolicy: Retain to remove the"
            " resource and keep them"
        )
        _refused(patch, status, meta.get("generation", 0), "HasSoldTickets", message)
        raise kopf.TemporaryError(message, delay=SETTINGS.retry_seconds * 6)
    await services.delete_showtime(key(namespace, name))
    logger.info("withdrew the showtime")
