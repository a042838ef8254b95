"""The order service's SQL: inventory, holds, orders, tickets."""

from __future__ import annotations

import datetime as dt

import asyncpg

from bmt_common.db import Connection
from bmt_common.events import ShowtimeReleased


async def add_showtime(conn: Connection, event: ShowtimeReleased) -> None:
    await conn.execute(
        "INSERT INTO showtimes (id, film_id, cinema_name, hall_name, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        event.showtime_id,
        event.film_id,
        event.cinema_name,
        event.hall_name,
        event.starts_at,
        event.ends_at,
    )
    await conn.execute(
        "INSERT INTO seats (showtime_id, seat_id, label, seat_type, price, pair_seat_id)"
        " SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[],"
        " $6::bigint[]) ON CONFLICT DO NOTHING",
        event.showtime_id,
        [s.seat_id for s in event.seats],
        [s.label for s in event.seats],
        [s.seat_type for s in event.seats],
        [s.price for s in event.seats],
        [s.pair_seat_id for s in event.seats],
    )


async def showtime(conn: Connection, showtime_id: int) -> asyncpg.Record | None:
    """A released showtime that was not cancelled."""
    return await conn.fetchrow(
        "SELECT id, starts_at, cinema_name, hall_name FROM showtimes"
        " WHERE id = $1 AND cancelled_at IS NULL",
        showtime_id,
    )


async def cancel_showtime(conn: Connection, showtime_id: int) -> None:
    await conn.execute(
        "UPDATE showtimes SET cancelled_at = now() WHERE id = $1 AND cancelled_at IS NULL",
        showtime_id,
    )


async def seat_map_json(conn: Connection, showtime_id: int) -> str | None:
    """The seat map as JSON, built by PostgreSQL in one statement (the hottest read of a
    sale); None when the showtime is not bookable. An expired hold reads as available: it
    is, for the next buyer."""
    document: str | None = await conn.fetchval(
        "WITH m AS (SELECT seat_id, label, seat_type, price, pair_seat_id,"
        " CASE WHEN status = 'held' AND held_until <= now() THEN 'available' ELSE status END"
        " AS status FROM seats WHERE showtime_id = $1)"
        " SELECT json_build_object('showtime_id', t.id, 'starts_at', t.starts_at,"
        " 'available', (SELECT count(*) FROM m WHERE status = 'available'),"
        " 'held', (SELECT count(*) FROM m WHERE status = 'held'),"
        " 'sold', (SELECT count(*) FROM m WHERE status = 'sold'),"
        " 'seats', coalesce((SELECT json_agg(m ORDER BY seat_id) FROM m), '[]'))::text"
        " FROM showtimes t WHERE t.id = $1 AND t.cancelled_at IS NULL",
        showtime_id,
    )
    return document


async def order_and_hold(
    conn: Connection,
    *,
    user_id: int,
    email: str,
    showtime_id: int,
    seat_ids: list[int],
    hold_minutes: int,
    seats_total: int,
    fabs_total: int,
) -> tuple[asyncpg.Record, list[int]]:
    """Insert the order and hold the seats that are free (or whose hold expired), in one
    statement; returns the order and the seat ids now held by it.

    Rows are locked in seat order first, so two overlapping holds queue instead of
    deadlocking; the loser sees the winner's hold when its turn comes. The caller rolls the
    transaction back when fewer seats than asked were held.
    """
    row = await conn.fetchrow(
        "WITH o AS (INSERT INTO orders (user_id, email, showtime_id, expires_at, seats_total,"
        " fabs_total, total) VALUES ($1, $2, $3, now() + make_interval(mins => $5), $6::bigint,"
        " $7::bigint, $6::bigint + $7::bigint) RETURNING id, status, expires_at, created_at),"
        " wanted AS (SELECT seat_id FROM seats WHERE showtime_id = $3"
        " AND seat_id = any($4::bigint[]) ORDER BY seat_id FOR UPDATE),"
        " held AS (UPDATE seats s SET status = 'held', order_id = o.id, held_until = o.expires_at"
        " FROM wanted w, o WHERE s.showtime_id = $3 AND s.seat_id = w.seat_id"
        " AND (s.status = 'available' OR (s.status = 'held' AND s.held_until <= now()))"
        " RETURNING s.seat_id)"
        " SELECT o.id, o.status, o.expires_at, o.created_at,"
        " coalesce((SELECT array_agg(seat_id) FROM held), '{}') AS held FROM o",
        user_id,
        email,
        showtime_id,
        seat_ids,
        hold_minutes,
        seats_total,
        fabs_total,
    )
    assert row is not None
    return row, list(row["held"])


async def bookable_seats(
    conn: Connection, showtime_id: int, seat_ids: list[int]
) -> list[asyncpg.Record] | None:
    """The requested seats of a bookable showtime (with their pair's label); None when the
    showtime is unknown or cancelled."""
    rows = await conn.fetch(
        "SELECT s.seat_id, s.label, s.seat_type, s.price, s.pair_seat_id, p.label AS pair_label"
        " FROM showtimes t LEFT JOIN seats s ON s.showtime_id = t.id"
        " AND s.seat_id = any($2::bigint[])"
        " LEFT JOIN seats p ON p.showtime_id = s.showtime_id AND p.seat_id = s.pair_seat_id"
        " WHERE t.id = $1 AND t.cancelled_at IS NULL",
        showtime_id,
        seat_ids,
    )
    if not rows:
        return None
    return [r for r in rows if r["seat_id"] is not None]


async def add_lines(
    conn: Connection,
    order_id: int,
    seat_rows: list[asyncpg.Record],
    fabs: list[tuple[int, str, int, int]],
) -> None:
    await conn.execute(
        "INSERT INTO order_seats (order_id, seat_id, label, seat_type, price)"
        " SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[])",
        order_id,
        [r["seat_id"] for r in seat_rows],
        [r["label"] for r in seat_rows],
        [r["seat_type"] for r in seat_rows],
        [r["price"] for r in seat_rows],
    )
    if fabs:
        await conn.executemany(
            "INSERT INTO order_fabs (order_id, fab_id, name, unit_price, quantity)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(order_id, *fab) for fab in fabs],
        )


async def order(conn: Connection, order_id: int, *, lock: bool = False) -> asyncpg.Record | None:
    query = (
        "SELECT id, user_id, email, showtime_id, status, seats_total, fabs_total, total,"
        " expires_at, created_at, confirmed_at, payment_id FROM orders WHERE id = $1"
    )
    return await conn.fetchrow(query + (" FOR UPDATE" if lock else ""), order_id)


async def orders(conn: Connection, user_id: int | None, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, user_id, email, showtime_id, status, seats_total, fabs_total, total,"
        " expires_at, created_at, confirmed_at, payment_id FROM orders"
        " WHERE $1::bigint IS NULL OR user_id = $1 ORDER BY id DESC LIMIT $2",
        user_id,
        limit,
    )


async def lines(
    conn: Connection, order_ids: list[int]
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    seat_rows = await conn.fetch(
        "SELECT order_id, seat_id, label, seat_type, price FROM order_seats"
        " WHERE order_id = any($1::bigint[]) ORDER BY seat_id",
        order_ids,
    )
    fab_rows = await conn.fetch(
        "SELECT order_id, fab_id, name, unit_price, quantity FROM order_fabs"
        " WHERE order_id = any($1::bigint[]) ORDER BY fab_id",
        order_ids,
    )
    return seat_rows, fab_rows


async def close_order(conn: Connection, order_id: int, user_id: int | None, status: str) -> bool:
    """Close a pending order (cancelled or expired) and free its held seats."""
    closed = await conn.fetchval(
        "UPDATE orders SET status = $3, closed_at = now() WHERE id = $1 AND status = 'pending'"
        " AND ($2::bigint IS NULL OR user_id = $2) RETURNING id",
        order_id,
        user_id,
        status,
    )
    if closed is None:
        return False
    await release_seats(conn, [order_id])
    return True


async def release_seats(conn: Connection, order_ids: list[int]) -> None:
    await conn.execute(
        "UPDATE seats SET status = 'available', order_id = NULL, held_until = NULL"
        " WHERE order_id = any($1::bigint[]) AND status = 'held'",
        order_ids,
    )


async def expire_due(conn: Connection, batch: int) -> list[int]:
    """Expire pending orders past their hold (skipping rows another sweeper holds)."""
    rows = await conn.fetch(
        "WITH due AS (SELECT id FROM orders WHERE status = 'pending' AND expires_at <= now()"
        " ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE orders o SET status = 'expired', closed_at = now() FROM due"
        " WHERE o.id = due.id RETURNING o.id",
        batch,
    )
    ids = [r["id"] for r in rows]
    if ids:
        await release_seats(conn, ids)
    return ids


async def held_seats(conn: Connection, order_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT showtime_id, seat_id, label FROM seats WHERE order_id = $1 AND status = 'held'"
        " ORDER BY seat_id FOR UPDATE",
        order_id,
    )


async def sell(conn: Connection, order_id: int) -> None:
    await conn.execute(
        "UPDATE seats SET status = 'sold', held_until = NULL"
        " WHERE order_id = $1 AND status = 'held'",
        order_id,
    )


async def confirm(conn: Connection, order_id: int, payment_id: int) -> None:
    await conn.execute(
        "UPDATE orders SET status = 'confirmed', payment_id = $2, confirmed_at = now()"
        " WHERE id = $1",
        order_id,
        payment_id,
    )


async def mark_refund_required(conn: Connection, order_id: int) -> None:
    """A pending order paid too late (its seats are gone) ends as refund_required."""
    await conn.execute(
        "UPDATE orders SET status = 'refund_required', closed_at = now()"
        " WHERE id = $1 AND status = 'pending'",
        order_id,
    )


async def ticket_ids(conn: Connection, count: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('tickets', 'id')) AS id FROM generate_series(1, $1)",
        count,
    )
    return [r["id"] for r in rows]


async def add_tickets(conn: Connection, tickets: list[tuple[int, int, int, int, str, str]]) -> None:
    await conn.executemany(
        "INSERT INTO tickets (id, order_id, showtime_id, seat_id, seat_label, code)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        tickets,
    )


async def tickets(conn: Connection, order_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, order_id, showtime_id, seat_id, seat_label, code, checked_in_at FROM tickets"
        " WHERE order_id = $1 ORDER BY id",
        order_id,
    )


async def ticket(conn: Connection, ticket_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT t.id, t.order_id, t.showtime_id, t.seat_id, t.seat_label, t.code,"
        " t.checked_in_at, o.user_id FROM tickets t JOIN orders o ON o.id = t.order_id"
        " WHERE t.id = $1",
        ticket_id,
    )


async def check_in(conn: Connection, ticket_id: int) -> dt.datetime | None:
    """The check-in time, or None if the ticket was already checked in."""
    at: dt.datetime | None = await conn.fetchval(
        "UPDATE tickets SET checked_in_at = now() WHERE id = $1 AND checked_in_at IS NULL"
        " RETURNING checked_in_at",
        ticket_id,
    )
    return at
