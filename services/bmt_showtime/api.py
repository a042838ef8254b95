"""The showtime service's routes: cinemas with their layouts, showtimes, release, queries."""

from __future__ import annotations

import datetime as dt

import aiohttp
import asyncpg
from aiohttp import web

from bmt_common import outbox
from bmt_common.db import POOL, Connection
from bmt_common.events import ReleasedSeat, ShowtimeCancelled, ShowtimeReleased
from bmt_common.inputs import body_of, path_id, query_of
from bmt_common.problems import Problem, not_found
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_showtime import domain
from bmt_showtime import repository as repo
from bmt_showtime.domain import (
    Cinema,
    CinemaList,
    CinemaSpec,
    HallOut,
    NowShowing,
    NowShowingList,
    NowShowingQuery,
    Showtime,
    ShowtimeByKey,
    ShowtimeList,
    ShowtimeQuery,
    ShowtimeSpec,
)
from bmt_showtime.settings import ShowtimeSettings

api = Api("BMT showtime service", "Cinemas, halls and seat layouts, showtimes and their release.")
SETTINGS = web.AppKey("settings", ShowtimeSettings)
HTTP = web.AppKey("http", aiohttp.ClientSession)


async def _sync_halls(conn: Connection, cinema_id: int, spec: CinemaSpec) -> None:
    """Make the cinema's halls and seats match the spec; a hall with released showtimes keeps
    its layout (tickets were sold against it) and refuses a change."""
    existing = await repo.hall_ids(conn, cinema_id)
    for hall in spec.halls:
        plan = domain.layout(hall)
        hall_id = existing.get(hall.name)
        if hall_id is None:
            hall_id = await repo.add_hall(conn, cinema_id, hall.name)
        elif await repo.seat_plan(conn, hall_id) == plan:
            continue
        elif await repo.hall_has_showtimes(conn, hall_id, released_only=True):
            raise Problem(409, f"Hall {hall.name!r} has released showtimes; its layout is fixed")
        await repo.replace_seats(conn, hall_id, plan)
    for name, hall_id in existing.items():
        if name not in {h.name for h in spec.halls}:
            if await repo.hall_has_showtimes(conn, hall_id, released_only=False):
                raise Problem(409, f"Hall {name!r} has showtimes; it cannot be removed")
            await repo.delete_hall(conn, hall_id)


async def _cinema(conn: Connection, row: asyncpg.Record) -> Cinema:
    halls = await repo.halls_of(conn, [row["id"]])
    return Cinema(
        **dict(row),
        halls=[
            HallOut(id=h["id"], name=h["name"], seats=h["seats"], blocked=h["blocked"])
            for h in halls
        ],
    )


@api.route(
    "POST",
    "/v1/cinemas",
    summary="Add a cinema with its halls and seat layouts",
    tag="cinemas",
    auth="admin",
    body=CinemaSpec,
    response=Cinema,
    status=201,
)
async def add_cinema(request: web.Request) -> web.Response:
    spec = body_of(request, CinemaSpec)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        cinema_id = await repo.insert_cinema(conn, None, spec.name, spec.city, spec.address)
        await _sync_halls(conn, cinema_id, spec)
        row = await repo.cinema(conn, cinema_id)
        assert row is not None
        return json_response(await _cinema(conn, row), 201)


@api.route(
    "PUT",
    "/v1/cinemas/by-key/{key}",
    summary="Create or update a cinema by external key",
    tag="cinemas",
    auth="admin",
    body=CinemaSpec,
    response=Cinema,
    errors=(409,),
)
async def put_cinema(request: web.Request) -> web.Response:
    spec, key = body_of(request, CinemaSpec), request.match_info["key"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # One writer per key at a time: concurrent upserts of one cinema queue up.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"cinema:{key}")
        cinema_id = await repo.upsert_cinema_by_key(conn, key, spec.name, spec.city, spec.address)
        await _sync_halls(conn, cinema_id, spec)
        row = await repo.cinema(conn, cinema_id)
        assert row is not None
        return json_response(await _cinema(conn, row))


@api.route(
    "DELETE",
    "/v1/cinemas/by-key/{key}",
    summary="Remove a cinema without showtimes",
    tag="cinemas",
    auth="admin",
    status=204,
    errors=(404, 409),
)
async def delete_cinema(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repo.cinema_by_key(conn, key)
        if row is None:
            raise not_found(f"Cinema {key!r}")
        if not await repo.delete_cinema(conn, row["id"]):
            raise Problem(409, f"Cinema {key!r} has showtimes; remove them first")
    return web.Response(status=204)


@api.route("GET", "/v1/cinemas", summary="List cinemas", tag="cinemas", response=CinemaList)
async def list_cinemas(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await repo.cinemas(conn)
        halls = await repo.halls_of(conn, [r["id"] for r in rows])
    by_cinema: dict[int, list[HallOut]] = {}
    for h in halls:
        by_cinema.setdefault(h["cinema_id"], []).append(
            HallOut(id=h["id"], name=h["name"], seats=h["seats"], blocked=h["blocked"])
        )
    return json_response(
        CinemaList(items=[Cinema(**dict(r), halls=by_cinema.get(r["id"], [])) for r in rows])
    )


@api.route(
    "GET",
    "/v1/cinemas/{id}",
    summary="Read a cinema",
    tag="cinemas",
    response=Cinema,
    errors=(404,),
)
async def read_cinema(request: web.Request) -> web.Response:
    cinema_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.cinema(conn, cinema_id)
        if row is None:
            raise not_found(f"Cinema {cinema_id}")
        return json_response(await _cinema(conn, row))


@api.route(
    "GET",
    "/v1/cinemas/by-key/{key}",
    summary="Read a cinema by external key",
    tag="cinemas",
    response=Cinema,
    errors=(404,),
)
async def read_cinema_by_key(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn:
        row = await repo.cinema_by_key(conn, key)
        if row is None:
            raise not_found(f"Cinema {key!r}")
        return json_response(await _cinema(conn, row))


async def _film_duration(request: web.Request, film_id: int) -> int:
    url = f"{request.app[SETTINGS].product_url}/v1/films/{film_id}"
    try:
        async with request.app[HTTP].get(url) as response:
            if response.status == 404:
                raise Problem(
                    422,
                    f"Film {film_id} does not exist",
                    errors=[{"field": "film_id", "message": f"film {film_id} does not exist"}],
                )
            response.raise_for_status()
            duration: int = (await response.json())["duration_minutes"]
            return duration
    except (aiohttp.ClientError, TimeoutError):
        raise Problem(503, "The film catalogue is unavailable; try again shortly") from None


def _refuse_past(starts_at: dt.datetime) -> None:
    if starts_at <= dt.datetime.now(dt.UTC):
        raise Problem(
            422,
            "A showtime cannot start in the past",
            errors=[{"field": "starts_at", "message": "must be in the future"}],
        )


async def _place(
    request: web.Request,
    conn: Connection,
    key: str | None,
    existing: int | None,
    film_id: int,
    hall_id: int,
    starts_at: dt.datetime,
    duration: int,
) -> int:
    _refuse_past(starts_at)
    ends_at = domain.ends_at(starts_at, duration, request.app[SETTINGS].cleaning_minutes)
    try:
        async with conn.transaction():
            if existing is None:
                return await repo.insert_showtime(conn, key, film_id, hall_id, starts_at, ends_at)
            await repo.update_showtime(conn, existing, film_id, hall_id, starts_at, ends_at)
            return existing
    except asyncpg.ExclusionViolationError:
        clash = await repo.overlapping(conn, hall_id, starts_at, ends_at)
        detail = "The hall is taken at that time"
        if clash is not None:
            detail = (
                f"The hall is taken by showtime {clash['id']} from"
                f" {clash['starts_at']:%Y-%m-%d %H:%M} to {clash['ends_at']:%H:%M} UTC"
                " (cleaning included)"
            )
        raise Problem(409, detail) from None
    except asyncpg.ForeignKeyViolationError:
        raise Problem(
            422,
            f"Hall {hall_id} does not exist",
            errors=[{"field": "hall_id", "message": f"hall {hall_id} does not exist"}],
        ) from None


def _showtime(row: asyncpg.Record) -> Showtime:
    return Showtime.model_validate(dict(row))


@api.route(
    "POST",
    "/v1/showtimes",
    summary="Schedule a film in a hall",
    tag="showtimes",
    auth="admin",
    body=ShowtimeSpec,
    response=Showtime,
    status=201,
    errors=(409,),
)
async def add_showtime(request: web.Request) -> web.Response:
    spec = body_of(request, ShowtimeSpec)
    _refuse_past(spec.starts_at)
    # The film's length comes from the product service before a connection is taken.
    duration = await _film_duration(request, spec.film_id)
    async with request.app[POOL].acquire() as conn:
        showtime_id = await _place(
            request, conn, None, None, spec.film_id, spec.hall_id, spec.starts_at, duration
        )
        row = await repo.showtime(conn, showtime_id)
    assert row is not None
    return json_response(_showtime(row), 201)


@api.route(
    "PUT",
    "/v1/showtimes/by-key/{key}",
    summary="Create, move or release a showtime by key",
    tag="showtimes",
    auth="admin",
    body=ShowtimeByKey,
    response=Showtime,
    errors=(404, 409),
)
async def put_showtime(request: web.Request) -> web.Response:
    spec, key = body_of(request, ShowtimeByKey), request.match_info["key"]
    duration: int | None = None
    while True:
        async with request.app[POOL].acquire() as conn:
            # One writer per key; the lock is a session's, so it spans the inner transactions.
            await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"showtime:{key}")
            try:
                row = await _put_by_key(request, conn, key, spec, duration)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"showtime:{key}")
        if row is not None:
            return json_response(_showtime(row))
        # Placing it needs the film's length: asked of the product service with no lock or
        # connection held, then decided again under the lock.
        duration = await _film_duration(request, spec.film_id)


async def _put_by_key(
    request: web.Request,
    conn: Connection,
    key: str,
    spec: ShowtimeByKey,
    duration: int | None,
) -> asyncpg.Record | None:
    """The showtime as the spec wants it; None when placing it needs the film's duration."""
    cinema = await repo.cinema_by_key(conn, spec.cinema_key)
    if cinema is None:
        raise Problem(422, f"Cinema {spec.cinema_key!r} does not exist")
    hall_id = (await repo.hall_ids(conn, cinema["id"])).get(spec.hall)
    if hall_id is None:
        raise Problem(422, f"Cinema {spec.cinema_key!r} has no hall {spec.hall!r}")
    row = await repo.showtime_by_key(conn, key)
    wanted = (spec.film_id, hall_id, spec.starts_at)
    same = row is not None and (row["film_id"], row["hall_id"], row["starts_at"]) == wanted
    if row is not None and row["released"] and not same:
        raise Problem(409, "A released showtime keeps its film, hall and start time")
    if row is not None and same:
        showtime_id = row["id"]
    elif duration is None:
        _refuse_past(spec.starts_at)
        return None
    else:
        current = row["id"] if row else None
        showtime_id = await _place(
            request, conn, key, current, spec.film_id, hall_id, spec.starts_at, duration
        )
    if spec.released:
        await _release(conn, showtime_id)
    placed = await repo.showtime(conn, showtime_id)
    if placed is None:  # withdrawn by a DELETE between our statements
        raise not_found(f"Showtime {key!r}")
    return placed


@api.route(
    "DELETE",
    "/v1/showtimes/by-key/{key}",
    summary="Withdraw a showtime: no more bookings",
    tag="showtimes",
    auth="admin",
    status=204,
    errors=(404,),
)
async def delete_showtime(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repo.showtime_by_key(conn, key)
        if row is None:
            raise not_found(f"Showtime {key!r}")
        await repo.delete_showtime(conn, row["id"])
        if row["released"]:
            await outbox.add(conn, ShowtimeCancelled(showtime_id=row["id"]))
    return web.Response(status=204)


async def _release(conn: Connection, showtime_id: int) -> None:
    """Make a showtime bookable: its seats go to the order service through the outbox."""
    async with conn.transaction():
        row = await repo.showtime(conn, showtime_id)
        if row is None:
            raise not_found(f"Showtime {showtime_id}")
        if not await repo.release(conn, showtime_id):
            return  # already released: nothing more to publish
        seats = await repo.bookable_seats(conn, row["hall_id"])
        await outbox.add(
            conn,
            ShowtimeReleased(
                showtime_id=showtime_id,
                film_id=row["film_id"],
                cinema_id=row["cinema_id"],
                cinema_name=row["cinema_name"],
                hall_id=row["hall_id"],
                hall_name=row["hall_name"],
                starts_at=row["starts_at"],
                ends_at=row["ends_at"],
                seats=[
                    ReleasedSeat(
                        seat_id=s["id"],
                        label=s["label"],
                        seat_type=s["seat_type"],
                        price=s["price"],
                        pair_seat_id=s["pair_seat_id"],
                    )
                    for s in seats
                ],
            ),
        )


@api.route(
    "POST",
    "/v1/showtimes/{id}/release",
    summary="Release a showtime: its seats become bookable",
    tag="showtimes",
    auth="admin",
    response=Showtime,
    errors=(404,),
)
async def release_showtime(request: web.Request) -> web.Response:
    showtime_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        await _release(conn, showtime_id)
        row = await repo.showtime(conn, showtime_id)
    assert row is not None
    return json_response(_showtime(row))


@api.route(
    "GET",
    "/v1/showtimes",
    summary="Showtimes of a film, a cinema, a day",
    tag="showtimes",
    query=ShowtimeQuery,
    response=ShowtimeList,
)
async def list_showtimes(request: web.Request) -> web.Response:
    q = query_of(request, ShowtimeQuery)
    async with request.app[POOL].acquire() as conn:
        rows = await repo.showtimes(conn, q.film_id, q.cinema_id, q.date, q.include_unreleased)
    return json_response(ShowtimeList(items=[_showtime(r) for r in rows]))


@api.route(
    "GET",
    "/v1/showtimes/{id}",
    summary="Read a showtime",
    tag="showtimes",
    response=Showtime,
    errors=(404,),
)
async def read_showtime(request: web.Request) -> web.Response:
    showtime_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.showtime(conn, showtime_id)
    if row is None:
        raise not_found(f"Showtime {showtime_id}")
    return json_response(_showtime(row))


@api.route(
    "GET",
    "/v1/now-showing",
    summary="Films with released showtimes in the coming days",
    tag="showtimes",
    query=NowShowingQuery,
    response=NowShowingList,
)
async def now_showing(request: web.Request) -> web.Response:
    q = query_of(request, NowShowingQuery)
    async with request.app[POOL].acquire() as conn:
        rows = await repo.now_showing(conn, q.days)
    return json_response(NowShowingList(items=[NowShowing(**dict(r)) for r in rows]))


@api.route(
    "GET",
    "/v1/films/{id}/cinemas",
    summary="Cinemas with upcoming showtimes of a film",
    tag="showtimes",
    response=CinemaList,
    errors=(404,),
)
async def cinemas_showing(request: web.Request) -> web.Response:
    film_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        ids = await repo.cinemas_showing(conn, film_id)
        items = []
        for cinema_id in ids:
            row = await repo.cinema(conn, cinema_id)
            if row is not None:
                items.append(await _cinema(conn, row))
    return json_response(CinemaList(items=items))
