"""The showtime service's SQL."""

from __future__ import annotations

import datetime as dt

import asyncpg

from bmt_common.db import Connection
from bmt_showtime.domain import SeatPlan

SHOWTIME_SELECT = """
SELECT s.id, s.external_key, s.film_id, c.id AS cinema_id, c.name AS cinema_name,
       h.id AS hall_id, h.name AS hall_name, s.starts_at, s.ends_at,
       s.released_at IS NOT NULL AS released
FROM showtimes s JOIN halls h ON h.id = s.hall_id JOIN cinemas c ON c.id = h.cinema_id
"""


async def insert_cinema(
    conn: Connection, key: str | None, name: str, city: str, address: str
) -> int:
    cinema_id: int = await conn.fetchval(
        "INSERT INTO cinemas (external_key, name, city, address) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        key,
        name,
        city,
        address,
    )
    return cinema_id


async def upsert_cinema_by_key(
    conn: Connection, key: str, name: str, city: str, address: str
) -> int:
    cinema_id: int = await conn.fetchval(
        "INSERT INTO cinemas (external_key, name, city, address) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (external_key) DO UPDATE SET name = excluded.name, city = excluded.city,"
        " address = excluded.address, updated_at = now() RETURNING id",
        key,
        name,
        city,
        address,
    )
    return cinema_id


async def hall_ids(conn: Connection, cinema_id: int) -> dict[str, int]:
    rows = await conn.fetch("SELECT id, name FROM halls WHERE cinema_id = $1", cinema_id)
    return {r["name"]: r["id"] for r in rows}


async def add_hall(conn: Connection, cinema_id: int, name: str) -> int:
    hall_id: int = await conn.fetchval(
        "INSERT INTO halls (cinema_id, name) VALUES ($1, $2) RETURNING id", cinema_id, name
    )
    return hall_id


async def hall_has_showtimes(conn: Connection, hall_id: int, released_only: bool) -> bool:
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM showtimes WHERE hall_id = $1"
        " AND (NOT $2 OR released_at IS NOT NULL))",
        hall_id,
        released_only,
    )
    return found


async def seat_plan(conn: Connection, hall_id: int) -> list[SeatPlan]:
    rows = await conn.fetch(
        "SELECT row_label, number, label, seat_type, price, blocked, pair_label FROM seats"
        " WHERE hall_id = $1 ORDER BY row_label, number",
        hall_id,
    )
    return [SeatPlan(**dict(r)) for r in rows]


async def replace_seats(conn: Connection, hall_id: int, seats: list[SeatPlan]) -> None:
    await conn.execute("DELETE FROM seats WHERE hall_id = $1", hall_id)
    await conn.executemany(
        "INSERT INTO seats (hall_id, row_label, number, label, seat_type, price, blocked,"
        " pair_label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (hall_id, s.row_label, s.number, s.label, s.seat_type, s.price, s.blocked, s.pair_label)
            for s in seats
        ],
    )


async def delete_hall(conn: Connection, hall_id: int) -> None:
    await conn.execute("DELETE FROM halls WHERE id = $1", hall_id)


async def cinema(conn: Connection, cinema_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, external_key, name, city, address FROM cinemas WHERE id = $1", cinema_id
    )


async def cinema_by_key(conn: Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, external_key, name, city, address FROM cinemas WHERE external_key = $1", key
    )


async def cinemas(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, external_key, name, city, address FROM cinemas ORDER BY id")


async def halls_of(conn: Connection, cinema_ids: list[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT h.cinema_id, h.id, h.name, count(s.id) AS seats,"
        " count(s.id) FILTER (WHERE s.blocked) AS blocked"
        " FROM halls h LEFT JOIN seats s ON s.hall_id = h.id"
        " WHERE h.cinema_id = any($1::bigint[]) GROUP BY h.id ORDER BY h.name",
        cinema_ids,
    )


async def insert_showtime(
    conn: Connection,
    key: str | None,
    film_id: int,
    hall_id: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> int:
    showtime_id: int = await conn.fetchval(
        "INSERT INTO showtimes (external_key, film_id, hall_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        key,
        film_id,
        hall_id,
        starts_at,
        ends_at,
    )
    return showtime_id


async def update_showtime(
    conn: Connection,
    showtime_id: int,
    film_id: int,
    hall_id: int,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
) -> None:
    await conn.execute(
        "UPDATE showtimes SET film_id = $2, hall_id = $3, starts_at = $4, ends_at = $5"
        " WHERE id = $1 AND released_at IS NULL",
        showtime_id,
        film_id,
        hall_id,
        starts_at,
        ends_at,
    )


async def overlapping(
    conn: Connection, hall_id: int, starts_at: dt.datetime, ends_at: dt.datetime
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, starts_at, ends_at FROM showtimes WHERE hall_id = $1"
        " AND tstzrange(starts_at, ends_at) && tstzrange($2, $3) ORDER BY starts_at LIMIT 1",
        hall_id,
        starts_at,
        ends_at,
    )


async def showtime(conn: Connection, showtime_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(SHOWTIME_SELECT + " WHERE s.id = $1", showtime_id)


async def showtime_by_key(conn: Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(SHOWTIME_SELECT + " WHERE s.external_key = $1", key)


async def release(conn: Connection, showtime_id: int) -> bool:
    """True if this call released it (False: already released)."""
    status = await conn.execute(
        "UPDATE showtimes SET released_at = now() WHERE id = $1 AND released_at IS NULL",
        showtime_id,
    )
    return status == "UPDATE 1"


async def bookable_seats(conn: Connection, hall_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT s.id, s.label, s.seat_type, s.price, p.id AS pair_seat_id FROM seats s"
        " LEFT JOIN seats p ON p.hall_id = s.hall_id AND p.label = s.pair_label"
        " WHERE s.hall_id = $1 AND NOT s.blocked ORDER BY s.row_label, s.number",
        hall_id,
    )


async def showtimes(
    conn: Connection,
    film_id: int | None,
    cinema_id: int | None,
    day: dt.date | None,
    include_unreleased: bool,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        SHOWTIME_SELECT + " WHERE ($1::bigint IS NULL OR s.film_id = $1)"
        " AND ($2::bigint IS NULL OR c.id = $2)"
        " AND ($3::date IS NULL OR (s.starts_at AT TIME ZONE 'UTC')::date = $3)"
        " AND ($4 OR s.released_at IS NOT NULL) ORDER BY s.starts_at, s.id LIMIT 500",
        film_id,
        cinema_id,
        day,
        include_unreleased,
    )


async def now_showing(conn: Connection, days: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT film_id, count(*) AS showtimes, min(starts_at) AS first_starts_at FROM showtimes"
        " WHERE released_at IS NOT NULL AND starts_at > now()"
        " AND starts_at < now() + make_interval(days => $1) GROUP BY film_id ORDER BY film_id",
        days,
    )


async def cinemas_showing(conn: Connection, film_id: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT DISTINCT h.cinema_id FROM showtimes s JOIN halls h ON h.id = s.hall_id"
        " WHERE s.film_id = $1 AND s.released_at IS NOT NULL AND s.starts_at > now()",
        film_id,
    )
    return [r["cinema_id"] for r in rows]


async def delete_showtime(conn: Connection, showtime_id: int) -> None:
    await conn.execute("DELETE FROM showtimes WHERE id = $1", showtime_id)


async def delete_cinema(conn: Connection, cinema_id: int) -> bool:
    """False when a hall of the cinema still has showtimes."""
    busy: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM showtimes s JOIN halls h ON h.id = s.hall_id"
        " WHERE h.cinema_id = $1)",
        cinema_id,
    )
    if busy:
        return False
    await conn.execute("DELETE FROM cinemas WHERE id = $1", cinema_id)
    return True
