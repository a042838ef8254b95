"""The limit to compare with: a bare aiohttp + asyncpg server running the order service's hold
transaction and seat-map query, with the same pool size and none of BMT's layers (no auth,
no validation models, no middlewares, no outbox). `python -m bmt_bench.bare PORT DSN POOL`."""

from __future__ import annotations

import json
import sys

import asyncpg
from aiohttp import web

HOLD = (
    "WITH wanted AS (SELECT seat_id FROM seats WHERE showtime_id = $1"
    " AND seat_id = any($2::bigint[]) ORDER BY seat_id FOR UPDATE)"
    " UPDATE seats s SET status = 'held', order_id = $3, held_until = $4 FROM wanted w"
    " WHERE s.showtime_id = $1 AND s.seat_id = w.seat_id"
    " AND (s.status = 'available' OR (s.status = 'held' AND s.held_until <= now()))"
    " RETURNING s.seat_id, s.price"
)
POOL = web.AppKey("pool", asyncpg.Pool)


async def hold(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    seats = sorted(set(body["seats"]))
    async with request.app[POOL].acquire() as conn, conn.transaction():
        order = await conn.fetchrow(
            "INSERT INTO orders (user_id, email, showtime_id, expires_at)"
            " VALUES (0, 'bare@bench', $1, now() + interval '10 minutes') RETURNING id, expires_at",
            body["showtime_id"],
        )
        assert order is not None
        held = await conn.fetch(HOLD, body["showtime_id"], seats, order["id"], order["expires_at"])
        if len(held) < len(seats):
            raise web.HTTPConflict()  # rolls back, like the service
        await conn.execute(
            "INSERT INTO order_seats (order_id, seat_id, label, seat_type, price)"
            " SELECT $1, seat_id, '', 'standard', price FROM unnest($2::bigint[], $3::bigint[])"
            " AS t(seat_id, price)",
            order["id"],
            [r["seat_id"] for r in held],
            [r["price"] for r in held],
        )
        await conn.execute(
            "UPDATE orders SET total = $2 WHERE id = $1", order["id"], sum(r["price"] for r in held)
        )
    return web.json_response({"id": order["id"]}, status=201)


async def seat_map(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await conn.fetch(
            "SELECT seat_id, label, seat_type, price, pair_seat_id, status FROM seats"
            " WHERE showtime_id = $1 ORDER BY seat_id",
            int(request.match_info["id"]),
        )
    return web.json_response([dict(r) for r in rows])


def main() -> None:
    port, dsn, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])

    async def pool(app: web.Application):  # type: ignore[no-untyped-def]
        app[POOL] = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
        yield
        await app[POOL].close()

    app = web.Application()
    app.cleanup_ctx.append(pool)
    app.router.add_post("/hold", hold)
    app.router.add_get("/seatmap/{id}", seat_map)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
