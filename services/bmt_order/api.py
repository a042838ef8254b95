"""The order service's routes: seat maps, booking (hold + order in one transaction), orders,
tickets and check-in."""

from __future__ import annotations

import io

import asyncpg
import segno
from aiohttp import web

from bmt_common import outbox
from bmt_common.auth import Claims
from bmt_common.db import POOL, Connection
from bmt_common.events import OrderClosed, OrderCreated
from bmt_common.inputs import body_of, claims_of, path_id
from bmt_common.problems import Problem, not_found
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_order import domain
from bmt_order import repository as repo
from bmt_order.catalogue import Catalogue
from bmt_order.domain import (
    BookRequest,
    CheckedIn,
    CheckIn,
    Order,
    OrderFab,
    OrderList,
    OrderSeat,
    SeatMap,
    Ticket,
    TicketList,
)
from bmt_order.settings import OrderSettings

api = Api("BMT order service", "Seat maps, holds and orders, tickets and check-in.")
SETTINGS = web.AppKey("settings", OrderSettings)
CATALOGUE = web.AppKey("catalogue", Catalogue)


@api.route(
    "GET",
    "/v1/showtimes/{id}/seats",
    summary="The seat map of a showtime",
    tag="seats",
    response=SeatMap,
    errors=(404,),
)
async def seat_map(request: web.Request) -> web.Response:
    showtime_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        document = await repo.seat_map_json(conn, showtime_id)
    if document is None:
        raise not_found(f"Released showtime {showtime_id}")
    return web.Response(text=document, content_type="application/json")


@api.route(
    "POST",
    "/v1/orders",
    summary="Hold seats (and food and drinks): a pending order",
    tag="orders",
    auth="customer",
    body=BookRequest,
    response=Order,
    status=201,
    errors=(404, 409),
)
async def book(request: web.Request) -> web.Response:
    body, claims = body_of(request, BookRequest), claims_of(request)
    settings = request.app[SETTINGS]
    if len(body.seats) > settings.max_seats:
        raise Problem(422, f"At most {settings.max_seats} seats per order")
    fabs = await request.app[CATALOGUE].fabs([f.fab_id for f in body.fabs]) if body.fabs else {}
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await repo.bookable_seats(conn, body.showtime_id, body.seats)
        if found is None:
            raise not_found(f"Released showtime {body.showtime_id}")
        seat_rows = found
        known = {r["seat_id"]: r for r in seat_rows}
        unknown = [s for s in body.seats if s not in known]
        if unknown:
            raise Problem(
                422,
                f"Showtime {body.showtime_id} has no seats {unknown}",
                errors=[{"field": "seats", "message": f"unknown seat {s}"} for s in unknown],
            )
        couples = domain.couple_problems(
            set(body.seats), [(r["label"], r["pair_seat_id"], r["pair_label"]) for r in seat_rows]
        )
        if couples:
            text = "; ".join(couples)
            raise Problem(
                422,
                text[0].upper() + text[1:],
                errors=[{"field": "seats", "message": text} for text in couples],
            )
        lines = [
            (f.fab_id, fabs[f.fab_id].name, fabs[f.fab_id].price, f.quantity) for f in body.fabs
        ]
        seats_total = sum(r["price"] for r in seat_rows)
        fabs_total = sum(price * quantity for _, _, price, quantity in lines)
        order, held = await repo.order_and_hold(
            conn,
            user_id=int(claims.sub),
            email=claims.email,
            showtime_id=body.showtime_id,
            seat_ids=body.seats,
            hold_minutes=settings.hold_minutes,
            seats_total=seats_total,
            fabs_total=fabs_total,
        )
        if len(held) < len(body.seats):
            taken = sorted(set(body.seats) - set(held))
            labels = ", ".join(known[s]["label"] for s in taken)
            raise Problem(409, f"Seats {labels} are taken", taken=taken)  # rolls back the hold
        await repo.add_lines(conn, order["id"], seat_rows, lines)
        await outbox.add(
            conn,
            OrderCreated(
                order_id=order["id"],
                user_id=int(claims.sub),
                email=claims.email,
                showtime_id=body.showtime_id,
                total=seats_total + fabs_total,
                expires_at=order["expires_at"],
            ),
        )
    # Answered from what the transaction wrote: no second read.
    return json_response(
        Order(
            id=order["id"],
            user_id=int(claims.sub),
            showtime_id=body.showtime_id,
            status=order["status"],
            seats=[
                OrderSeat(
                    seat_id=r["seat_id"],
                    label=r["label"],
                    seat_type=r["seat_type"],
                    price=r["price"],
                )
                for r in sorted(seat_rows, key=lambda r: r["seat_id"])
            ],
            fabs=[
                OrderFab(fab_id=f, name=n, unit_price=p, quantity=q) for f, n, p, q in sorted(lines)
            ],
            seats_total=seats_total,
            fabs_total=fabs_total,
            total=seats_total + fabs_total,
            expires_at=order["expires_at"],
            created_at=order["created_at"],
            confirmed_at=None,
        ),
        201,
    )


async def _orders(conn: Connection, rows: list[asyncpg.Record]) -> list[Order]:
    """Orders with their lines: the rows as read, and two queries for every line of them."""
    seat_rows, fab_rows = await repo.lines(conn, [r["id"] for r in rows])
    seats: dict[int, list[OrderSeat]] = {}
    for r in seat_rows:
        seats.setdefault(r["order_id"], []).append(
            OrderSeat(
                seat_id=r["seat_id"], label=r["label"], seat_type=r["seat_type"], price=r["price"]
            )
        )
    fabs: dict[int, list[OrderFab]] = {}
    for r in fab_rows:
        fabs.setdefault(r["order_id"], []).append(
            OrderFab(
                fab_id=r["fab_id"],
                name=r["name"],
                unit_price=r["unit_price"],
                quantity=r["quantity"],
            )
        )
    return [
        Order(
            **{k: v for k, v in dict(r).items() if k not in ("email", "payment_id")},
            seats=seats.get(r["id"], []),
            fabs=fabs.get(r["id"], []),
        )
        for r in rows
    ]


def _visible(claims: Claims, owner: int) -> bool:
    """Clients see their own orders and tickets; admins see all."""
    return claims.role == "admin" or int(claims.sub) == owner


async def _own_order(conn: Connection, request: web.Request) -> asyncpg.Record:
    order_id = path_id(request)
    row = await repo.order(conn, order_id)
    # Someone else's order reads as missing: its existence is nobody else's business.
    if row is None or not _visible(claims_of(request), row["user_id"]):
        raise not_found(f"Order {order_id}")
    return row


@api.route(
    "GET",
    "/v1/orders",
    summary="My orders (all, for an admin)",
    tag="orders",
    auth="user",
    response=OrderList,
)
async def list_orders(request: web.Request) -> web.Response:
    claims = claims_of(request)
    async with request.app[POOL].acquire() as conn:
        rows = await repo.orders(conn, None if claims.role == "admin" else int(claims.sub), 100)
        items = await _orders(conn, rows)
    return json_response(OrderList(items=items))


@api.route(
    "GET",
    "/v1/orders/{id}",
    summary="Read an order",
    tag="orders",
    auth="user",
    response=Order,
    errors=(404,),
)
async def read_order(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await _own_order(conn, request)
        return json_response((await _orders(conn, [row]))[0])


@api.route(
    "POST",
    "/v1/orders/{id}/cancel",
    summary="Cancel my pending order; its seats are freed",
    tag="orders",
    auth="user",
    response=Order,
    errors=(404, 409),
)
async def cancel_order(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await _own_order(conn, request)
        if not await repo.close_order(conn, row["id"], row["user_id"], "cancelled"):
            raise Problem(
                409, f"Order {row['id']} is {row['status']}; only a pending order can be cancelled"
            )
        await outbox.add(conn, OrderClosed(order_id=row["id"], reason="cancelled"))
        closed = await repo.order(conn, row["id"])
        if closed is None:  # closed in this transaction, so only a concurrent delete gets here
            raise not_found(f"Order {row['id']}")
        return json_response((await _orders(conn, [closed]))[0])


def _ticket(row: asyncpg.Record) -> Ticket:
    return Ticket(
        id=row["id"],
        order_id=row["order_id"],
        showtime_id=row["showtime_id"],
        seat_label=row["seat_label"],
        code=row["code"],
        qr_url=f"/v1/tickets/{row['id']}/qr.png",
        checked_in_at=row["checked_in_at"],
    )


@api.route(
    "GET",
    "/v1/orders/{id}/tickets",
    summary="The tickets of my order (once it is paid)",
    tag="tickets",
    auth="user",
    response=TicketList,
    errors=(404,),
)
async def order_tickets(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await _own_order(conn, request)
        rows = await repo.tickets(conn, row["id"])
    return json_response(TicketList(items=[_ticket(r) for r in rows]))


@api.route(
    "GET",
    "/v1/tickets/{id}/qr.png",
    summary="A ticket's code as a QR image",
    tag="tickets",
    auth="user",
    errors=(404,),
)
async def ticket_qr(request: web.Request) -> web.Response:
    ticket_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.ticket(conn, ticket_id)
    if row is None or not _visible(claims_of(request), row["user_id"]):
        raise not_found(f"Ticket {ticket_id}")
    image = io.BytesIO()
    segno.make_qr(row["code"], error="m").save(image, kind="png", scale=6)
    return web.Response(body=image.getvalue(), content_type="image/png")


@api.route(
    "POST",
    "/v1/tickets/check-in",
    summary="Check a ticket in at the door (once)",
    tag="tickets",
    auth="staff",
    body=CheckIn,
    response=CheckedIn,
    errors=(409,),
)
async def check_in(request: web.Request) -> web.Response:
    code = body_of(request, CheckIn).code
    key = request.app[SETTINGS].ticket_key.get_secret_value()
    ticket_id = domain.ticket_id_of(code)
    async with request.app[POOL].acquire() as conn:
        row = await repo.ticket(conn, ticket_id) if ticket_id else None
        if row is None or not domain.code_matches(
            key, code, row["id"], row["order_id"], row["showtime_id"], row["seat_id"]
        ):
            raise Problem(422, "This is not a valid ticket code")
        at = await repo.check_in(conn, row["id"])
    if at is None:
        raise Problem(
            409,
            f"Ticket {row['seat_label']} was already checked in"
            + (f" at {row['checked_in_at']:%H:%M:%S} UTC" if row["checked_in_at"] else ""),
        )
    return json_response(
        CheckedIn(
            ticket_id=row["id"],
            order_id=row["order_id"],
            showtime_id=row["showtime_id"],
            seat_label=row["seat_label"],
            checked_in_at=at,
        )
    )
