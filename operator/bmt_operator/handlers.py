"""The Kopf handlers: one reconcile function per kind, run on create, update, resume and by a
drift timer; delete handlers honour `spec.deletionPolicy`. Every step is idempotent: the
operator may die anywhere and run it again."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import kopf

from bmt_common.events import DATABASES
from bmt_operator import provision
from bmt_operator.conditions import conditions
from bmt_operator.metrics import measured
from bmt_operator.services import Refused, Services, Unavailable
from bmt_operator.settings import OperatorSettings

GROUP, VERSION = "bmt.dev", "v1alpha1"
DRIFT_ANNOTATION = "bmt.dev/drift-interval-seconds"
SETTINGS = OperatorSettings()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.INFO  # what the operator did shows as Kubernetes Events
    settings.posting.reporting_component = "bmt-operator"
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


async def _failed(ctx: Ctx, exc: Exception) -> kopf.TemporaryError:
    """Synced=False with the message; the caller raises the returned error to retry."""
    await ctx.note("RetryingAfterError", str(exc), warning=True)
    ctx.patch.status["conditions"] = conditions(
        ctx.status,
        ctx.generation,
        ready=False,
        reason="Unavailable",
        message=str(exc),
        synced=False,
        synced_reason="RetryingAfterError",
        synced_message=str(exc),
    )
    return kopf.TemporaryError(str(exc), delay=_backoff(ctx.retry))


async def _refused(ctx: Ctx, reason: str, message: str) -> None:
    """Ready=False for a spec the world refuses: nothing to retry until the spec changes."""
    await ctx.note(reason, message, warning=True)
    ctx.patch.status["conditions"] = conditions(
        ctx.status,
        ctx.generation,
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


@dataclass
class Ctx:
    """What Kopf hands a handler, in one place."""

    name: str
    namespace: str | None
    spec: Any
    meta: Any
    status: Any
    body: Any
    patch: kopf.Patch
    memo: Any
    logger: Any
    retry: int = 0
    indices: dict[str, Any] = field(default_factory=dict)
    # Timers re-assert quietly; changes and failures are announced as Events.
    announce: bool = True

    @classmethod
    def of(cls, kwargs: dict[str, Any], *, announce: bool = True) -> Ctx:
        return cls(
            name=kwargs["name"],
            namespace=kwargs["namespace"],
            spec=kwargs["spec"],
            meta=kwargs["meta"],
            status=kwargs["status"],
            body=kwargs["body"],
            patch=kwargs["patch"],
            memo=kwargs["memo"],
            logger=kwargs["logger"],
            retry=kwargs.get("retry", 0),
            indices={
                k: kwargs[k]
                for k in ("film_ids", "cinema_halls", "showtimes_by_ref")
                if k in kwargs
            },
            announce=announce,
        )

    @property
    def generation(self) -> int:
        return int(self.meta.get("generation", 0))

    @property
    def key(self) -> str:
        return key(self.namespace, self.name)

    @property
    def services(self) -> Services:
        services: Services = self.memo.services
        return services

    async def note(self, reason: str, message: str, *, warning: bool = False) -> None:
        (self.logger.warning if warning else self.logger.info)(message)
        if self.announce or warning:
            # Kopf's own poster: queued, posted in the background, retried, cut to 1 KiB.
            post = kopf.warn if warning else kopf.info
            post(self.body, reason=reason, message=message)


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
    databases = (spec.get("connectors") or {}).get("databases") or list(DATABASES)
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
        mail_sender=(spec.get("mail") or {}).get("sender", "no-reply@bmt.local"),
    )


@measured("Platform")
async def reconcile_platform(ctx: Ctx) -> None:
    plan, where = _plan(ctx.spec), _endpoints()
    try:
        topics = await provision.ensure_topics(where, plan)
        media = await provision.ensure_media_wiring(where, plan.media)
        sender = await provision.ensure_mail_sender(where, plan.mail_sender)
        connectors = await provision.ensure_connectors(where, list(plan.databases))
    except Exception as exc:
        raise await _failed(ctx, exc) from None
    ctx.patch.status["media"] = media
    ctx.patch.status["mail"] = {"sender": plan.mail_sender, "verification": sender}
    ctx.patch.status["topics"] = topics
    ctx.patch.status["connectors"] = connectors
    summary = f"{len(topics)} topics, {len(connectors)} connectors, bucket {media['bucket']}"
    ctx.patch.status["conditions"] = conditions(
        ctx.status, ctx.generation, ready=True, reason="Provisioned", message=summary
    )
    await ctx.note("Provisioned", summary)


@kopf.on.resume(GROUP, VERSION, "platforms")
@kopf.on.create(GROUP, VERSION, "platforms")
@kopf.on.update(GROUP, VERSION, "platforms")
async def platform_changed(**kwargs: Any) -> None:
    await reconcile_platform(Ctx.of(kwargs))


@kopf.timer(GROUP, VERSION, "platforms", interval=SETTINGS.timer_tick_seconds)
async def platform_drift(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs, announce=False)
    if _due(ctx.memo, ctx.meta):
        await reconcile_platform(ctx)


@kopf.on.delete(GROUP, VERSION, "platforms")
async def platform_deleted(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs)
    if ctx.spec.get("deletionPolicy", "Retain") != "Delete":
        await ctx.note(
            "Retained", "deletionPolicy Retain: bucket, queues, topics and connectors are kept"
        )
        return
    plan, where = _plan(ctx.spec), _endpoints()
    await provision.delete_connectors(where, list(plan.databases))
    await provision.delete_topics(where, plan)
    await provision.delete_media_wiring(where, plan.media)
    await ctx.note("Deleted", "deleted connectors, topics, queues and bucket")


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
                        "label": row["label"],
                        "seats": row["seats"],
                        "seat_type": row.get("seatType", "standard"),
                        "price": row["price"],
                    }
                    for row in hall["rows"]
                ],
                "blocked": list(hall.get("blocked") or []),
            }
            for hall in spec["halls"]
        ],
    }


@measured("Cinema")
async def reconcile_cinema(ctx: Ctx) -> None:
    try:
        cinema = await ctx.services.put_cinema(ctx.key, _cinema_body(ctx.spec))
        bucket = cinema_bucket(ctx.namespace, ctx.name)
        # Its own media bucket, wired into the platform's notification topic.
        async with provision.aws(_endpoints(), "sns") as sns:
            topic_arn = (await sns.create_topic(Name="bmt-media-events"))["TopicArn"]
        await provision.ensure_bucket_notifying(_endpoints(), bucket, topic_arn)
    except Refused as exc:
        await _refused(ctx, "Refused", f"the showtime service refused the cinema: {exc.detail}")
        return
    except Unavailable as exc:
        raise await _failed(ctx, exc) from None
    halls = [h["name"] for h in cinema["halls"]]
    ctx.patch.status.update(
        {"cinemaId": cinema["id"], "halls": len(halls), "hallNames": halls, "bucket": bucket}
    )
    message = f"cinema {cinema['id']} with {len(halls)} halls; bucket {bucket}"
    ctx.patch.status["conditions"] = conditions(
        ctx.status, ctx.generation, ready=True, reason="Synced", message=message
    )
    await ctx.note("Synced", message)


@kopf.on.resume(GROUP, VERSION, "cinemas")
@kopf.on.create(GROUP, VERSION, "cinemas")
@kopf.on.update(GROUP, VERSION, "cinemas")
async def cinema_changed(**kwargs: Any) -> None:
    await reconcile_cinema(Ctx.of(kwargs))


@kopf.timer(GROUP, VERSION, "cinemas", interval=SETTINGS.timer_tick_seconds)
async def cinema_drift(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs, announce=False)
    if _due(ctx.memo, ctx.meta):
        await reconcile_cinema(ctx)


async def _refuse_while_used(ctx: Ctx, ref: str, what: str) -> None:
    users = sorted(ctx.indices["showtimes_by_ref"].get((ctx.namespace, f"{ref}:{ctx.name}"), []))
    if users:
        message = f"showtimes {', '.join(users)} use this {what}; delete them first"
        await _refused(ctx, "InUse", message)
        raise kopf.TemporaryError(message, delay=SETTINGS.retry_seconds * 2)


@kopf.on.delete(GROUP, VERSION, "cinemas")
async def cinema_deleted(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs)
    if ctx.spec.get("deletionPolicy", "Retain") != "Delete":
        await ctx.note("Retained", "deletionPolicy Retain: the cinema's rows and bucket are kept")
        return
    await _refuse_while_used(ctx, "cinema", "cinema")
    try:
        await ctx.services.delete_cinema(ctx.key)
    except Refused as exc:
        await _refused(ctx, "InUse", exc.detail)
        raise kopf.TemporaryError(exc.detail, delay=SETTINGS.retry_seconds * 2) from None
    await provision.delete_bucket(_endpoints(), cinema_bucket(ctx.namespace, ctx.name))
    await ctx.note("Deleted", "deleted the cinema's rows and bucket")


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


def _film_status(ctx: Ctx, film: dict[str, Any]) -> None:
    ctx.patch.status.update(
        {
            "filmId": film["id"],
            "media": film["media_status"],
            "posterUrl": film["poster_url"],
            "trailerUrl": film["trailer_url"],
        }
    )
    ctx.patch.status["conditions"] = conditions(
        ctx.status,
        ctx.generation,
        ready=True,
        reason="Synced",
        message=f"film {film['id']}, media {film['media_status']}",
    )


@measured("Film")
async def reconcile_film(ctx: Ctx) -> None:
    try:
        film = await ctx.services.put_film(ctx.key, _film_body(ctx.spec))
    except Refused as exc:
        await _refused(ctx, "Refused", f"the product service refused the film: {exc.detail}")
        return
    except Unavailable as exc:
        raise await _failed(ctx, exc) from None
    _film_status(ctx, film)
    await ctx.note("Synced", f"film {film['id']} synced, media {film['media_status']}")


@kopf.on.resume(GROUP, VERSION, "films")
@kopf.on.create(GROUP, VERSION, "films")
@kopf.on.update(GROUP, VERSION, "films")
async def film_changed(**kwargs: Any) -> None:
    await reconcile_film(Ctx.of(kwargs))


@kopf.timer(GROUP, VERSION, "films", interval=SETTINGS.timer_tick_seconds)
async def film_refresh(**kwargs: Any) -> None:
    """Media URLs arrive after the pipeline ran: follow them until ready; repair drift."""
    ctx = Ctx.of(kwargs, announce=False)
    if _due(ctx.memo, ctx.meta):
        await reconcile_film(ctx)
    elif (ctx.status or {}).get("media") != "ready" and (ctx.status or {}).get("filmId"):
        try:
            film = await ctx.services.film(ctx.key)
        except (Refused, Unavailable):
            return  # the next tick tries again
        if film is not None:
            _film_status(ctx, film)


@kopf.on.delete(GROUP, VERSION, "films")
async def film_deleted(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs)
    if ctx.spec.get("deletionPolicy", "Retain") != "Delete":
        await ctx.note("Retained", "deletionPolicy Retain: the film's row and media are kept")
        return
    await _refuse_while_used(ctx, "film", "film")
    await ctx.services.delete_film(ctx.key)
    await ctx.note("Deleted", "withdrew the film")


# Showtime
@measured("Showtime")
async def reconcile_showtime(ctx: Ctx) -> None:
    spec, namespace = ctx.spec, ctx.namespace
    film = [i for i in ctx.indices["film_ids"].get((namespace, spec["filmRef"]), []) if i]
    if not film:
        message = f"Film {spec['filmRef']!r} is missing or not ready yet"
        await _refused(ctx, "FilmNotFound", message)
        raise kopf.TemporaryError(message, delay=_backoff(min(ctx.retry, 3)))
    halls = [h for h in ctx.indices["cinema_halls"].get((namespace, spec["cinemaRef"]), []) if h]
    if not halls:
        message = f"Cinema {spec['cinemaRef']!r} is missing or not ready yet"
        await _refused(ctx, "CinemaNotFound", message)
        raise kopf.TemporaryError(message, delay=_backoff(min(ctx.retry, 3)))
    if spec["hall"] not in halls[0]:
        await _refused(
            ctx, "HallNotFound", f"Cinema {spec['cinemaRef']!r} has no hall {spec['hall']!r}"
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
        showtime = await ctx.services.put_showtime(ctx.key, body)
    except Refused as exc:
        reason = "Conflict" if exc.status == 409 else "Refused"
        await _refused(ctx, reason, f"the showtime service refused the showtime: {exc.detail}")
        return
    except Unavailable as exc:
        raise await _failed(ctx, exc) from None
    ctx.patch.status["showtimeId"] = showtime["id"]
    ctx.patch.status["endsAt"] = showtime["ends_at"]
    state = "Released" if showtime["released"] else "Scheduled"
    message = f"showtime {showtime['id']} until {showtime['ends_at']}"
    ctx.patch.status["conditions"] = conditions(
        ctx.status, ctx.generation, ready=True, reason=state, message=message
    )
    await ctx.note(state, message)


@kopf.on.resume(GROUP, VERSION, "showtimes")
@kopf.on.create(GROUP, VERSION, "showtimes")
@kopf.on.update(GROUP, VERSION, "showtimes")
async def showtime_changed(**kwargs: Any) -> None:
    await reconcile_showtime(Ctx.of(kwargs))


@kopf.timer(GROUP, VERSION, "showtimes", interval=SETTINGS.timer_tick_seconds)
async def showtime_seats(**kwargs: Any) -> None:
    """Keeps the seat counters fresh; re-asserts the showtime when its drift check is due."""
    ctx = Ctx.of(kwargs, announce=False)
    if _due(ctx.memo, ctx.meta):
        try:
            await reconcile_showtime(ctx)
        except kopf.TemporaryError:
            return
    showtime_id = (ctx.status or {}).get("showtimeId")
    if showtime_id and ctx.spec.get("released"):
        try:
            counts = await ctx.services.seat_counts(int(showtime_id))
        except (Refused, Unavailable):
            return
        if counts is not None and counts != (ctx.status or {}).get("seats"):
            ctx.patch.status["seats"] = counts


@kopf.on.delete(GROUP, VERSION, "showtimes")
async def showtime_deleted(**kwargs: Any) -> None:
    ctx = Ctx.of(kwargs)
    if ctx.spec.get("deletionPolicy", "Retain") != "Delete":
        await ctx.note(
            "Retained", "deletionPolicy Retain: the showtime, its seats and orders are kept"
        )
        return
    showtime_id = (ctx.status or {}).get("showtimeId")
    counts = await ctx.services.seat_counts(int(showtime_id)) if showtime_id else None
    if counts and counts["sold"]:
        message = (
            f"{counts['sold']} tickets are sold; set deletionPolicy: Retain to remove the"
            " resource and keep them"
        )
        await _refused(ctx, "HasSoldTickets", message)
        raise kopf.TemporaryError(message, delay=SETTINGS.retry_seconds * 6)
    await ctx.services.delete_showtime(ctx.key)
    await ctx.note("Deleted", "withdrew the showtime")
