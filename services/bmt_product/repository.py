"""The product service's SQL."""

from __future__ import annotations

import datetime as dt

import asyncpg

from bmt_common.db import Connection

# A film with the URLs of the media stored at its expected keys.
FILM_SELECT = """
SELECT f.id, f.title, f.description, f.release_date, f.duration_minutes, f.genres, f.age_rating,
       p.url AS poster_url, t.url AS trailer_url
FROM films f
LEFT JOIN media p ON p.key = f.poster_key
LEFT JOIN media t ON t.key = f.trailer_key
"""
FAB_SELECT = """
SELECT b.id, b.name, b.kind, b.price, m.url AS image_url
FROM fabs b LEFT JOIN media m ON m.key = b.image_key
"""


async def next_film_id(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('films', 'id'))")
    return value


async def next_fab_id(conn: Connection) -> int:
    value: int = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('fabs', 'id'))")
    return value


async def insert_film(
    conn: Connection,
    film_id: int,
    *,
    title: str,
    description: str,
    release_date: dt.date,
    duration_minutes: int,
    genres: list[str],
    age_rating: str,
    poster_key: str | None,
    trailer_key: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO films (id, title, description, release_date, duration_minutes, genres,"
        " age_rating, poster_key, trailer_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        film_id,
        title,
        description,
        release_date,
        duration_minutes,
        genres,
        age_rating,
        poster_key,
        trailer_key,
    )


async def update_film(
    conn: Connection,
    film_id: int,
    *,
    title: str | None = None,
    description: str | None = None,
    release_date: dt.date | None = None,
    duration_minutes: int | None = None,
    genres: list[str] | None = None,
    age_rating: str | None = None,
    poster_key: str | None = None,
    trailer_key: str | None = None,
) -> bool:
    """Change the given fields (None keeps a field); False if there is no such film."""
    status = await conn.execute(
        "UPDATE films SET title = coalesce($2, title), description = coalesce($3, description),"
        " release_date = coalesce($4, release_date),"
        " duration_minutes = coalesce($5, duration_minutes), genres = coalesce($6, genres),"
        " age_rating = coalesce($7, age_rating), poster_key = coalesce($8, poster_key),"
        " trailer_key = coalesce($9, trailer_key), updated_at = now() WHERE id = $1",
        film_id,
        title,
        description,
        release_date,
        duration_minutes,
        genres,
        age_rating,
        poster_key,
        trailer_key,
    )
    return status == "UPDATE 1"


async def film(conn: Connection, film_id: int) -> asyncpg.Record | None:
    """A film that is not deleted."""
    return await conn.fetchrow(FILM_SELECT + " WHERE f.id = $1 AND f.deleted_at IS NULL", film_id)


async def films(conn: Connection, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        FILM_SELECT + " WHERE f.deleted_at IS NULL ORDER BY f.id LIMIT $1 OFFSET $2", limit, offset
    )


async def film_by_key(conn: Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, poster_source, trailer_source, deleted_at FROM films WHERE external_key = $1",
        key,
    )


async def insert_film_by_key(conn: Connection, film_id: int, key: str) -> None:
    """A placeholder row for a managed film; `update_film` fills it in the same transaction."""
    await conn.execute(
        "INSERT INTO films (id, external_key, title, release_date, duration_minutes, age_rating)"
        " VALUES ($1, $2, '', '1970-01-01', 1, 'P')",
        film_id,
        key,
    )


async def set_sources(
    conn: Connection, film_id: int, poster_source: str | None, trailer_source: str | None
) -> None:
    await conn.execute(
        "UPDATE films SET poster_source = coalesce($2, poster_source),"
        " trailer_source = coalesce($3, trailer_source), deleted_at = NULL WHERE id = $1",
        film_id,
        poster_source,
        trailer_source,
    )


async def delete_film_by_key(conn: Connection, key: str) -> bool:
    status = await conn.execute(
        "UPDATE films SET deleted_at = now() WHERE external_key = $1 AND deleted_at IS NULL", key
    )
    return status == "UPDATE 1"


async def insert_fab(
    conn: Connection, fab_id: int, name: str, kind: str, price: int, image_key: str | None
) -> None:
    await conn.execute(
        "INSERT INTO fabs (id, name, kind, price, image_key) VALUES ($1, $2, $3, $4, $5)",
        fab_id,
        name,
        kind,
        price,
        image_key,
    )


async def update_fab(
    conn: Connection,
    fab_id: int,
    *,
    name: str | None = None,
    kind: str | None = None,
    price: int | None = None,
    image_key: str | None = None,
) -> bool:
    """Change the given fields (None keeps a field); False if there is no such live item."""
    status = await conn.execute(
        "UPDATE fabs SET name = coalesce($2, name), kind = coalesce($3, kind),"
        " price = coalesce($4, price), image_key = coalesce($5, image_key), updated_at = now()"
        " WHERE id = $1 AND NOT is_deleted",
        fab_id,
        name,
        kind,
        price,
        image_key,
    )
    return status == "UPDATE 1"


async def delete_fab(conn: Connection, fab_id: int) -> bool:
    status = await conn.execute(
        "UPDATE fabs SET is_deleted = true, updated_at = now() WHERE id = $1 AND NOT is_deleted",
        fab_id,
    )
    return status == "UPDATE 1"


async def fab(conn: Connection, fab_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(FAB_SELECT + " WHERE b.id = $1 AND NOT b.is_deleted", fab_id)


async def fabs(conn: Connection) -> list[asyncpg.Record]:
    return await conn.fetch(FAB_SELECT + " WHERE NOT b.is_deleted ORDER BY b.id")


async def record_media(
    conn: Connection, *, key: str, owner: str, owner_id: int, slot: str, url: str, size: int
) -> None:
    await conn.execute(
        "INSERT INTO media (key, owner, owner_id, slot, url, size) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (key) DO NOTHING",
        key,
        owner,
        owner_id,
        slot,
        url,
        size,
    )
