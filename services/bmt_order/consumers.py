"""What the order service does with other services' events."""

from __future__ import annotations

import logging

from bmt_common import outbox
from bmt_common.db import Connection
from bmt_common.events import (
    OrderConfirmationFailed,
    OrderConfirmed,
    PaymentSucceeded,
    ShowtimeCancelled,
    ShowtimeReleased,
    TicketIssued,
)
from bmt_order import domain
from bmt_order import repository as repo

log = logging.getLogger(__name__)


async def on_showtime_released(conn: Connection, event: ShowtimeReleased) -> None:
    await repo.add_showtime(conn, event)


async def on_showtime_cancelled(conn: Connection, event: ShowtimeCancelled) -> None:
    await repo.cancel_showtime(conn, event.showtime_id)


async def on_payment_succeeded(conn: Connection, event: PaymentSucceeded, ticket_key: str) -> None:
    """Confirm the order, sell its seats and issue one ticket per seat, or, if the order can
    no longer be confirmed, say so: the payment service refunds the payment."""
    order = await repo.order(conn, event.order_id, lock=True)

    async def refuse(reason: str) -> None:
        log.warning("order %s cannot be confirmed: %s", event.order_id, reason)
        await outbox.add(
            conn,
            OrderConfirmationFailed(
                order_id=event.order_id, payment_id=event.payment_id, reason=reason
            ),
        )

    if order is None:
        return await refuse("no such order")
    if order["status"] == "confirmed":
        if order["payment_id"] != event.payment_id:
            await refuse("the order was already paid by another payment")
        return None
    if order["status"] != "pending":
        return await refuse(f"the order is {order['status']}")
    if event.amount != order["total"]:
        return await refuse(f"paid {event.amount}, the order costs {order['total']}")
    seats = await repo.held_seats(conn, order["id"])
    seats_ordered, _ = await repo.lines(conn, [order["id"]])
    if len(seats) != len(seats_ordered):
        # The hold ran out and someone else took a seat before the payment arrived.
        await repo.release_seats(conn, [order["id"]])
        await repo.mark_refund_required(conn, order["id"])
        return await refuse("the hold expired and its seats were sold to someone else")
    await repo.sell(conn, order["id"])
    ids = await repo.ticket_ids(conn, len(seats))
    tickets = [
        (
            ticket_id,
            order["id"],
            seat["showtime_id"],
            seat["seat_id"],
            seat["label"],
            domain.ticket_code(
                ticket_key, ticket_id, order["id"], seat["showtime_id"], seat["seat_id"]
            ),
        )
        for ticket_id, seat in zip(ids, seats, strict=True)
    ]
    await repo.add_tickets(conn, tickets)
    await repo.confirm(conn, order["id"], event.payment_id)
    showtime = await repo.showtime(conn, order["showtime_id"])
    assert showtime is not None
    await outbox.add(
        conn,
        OrderConfirmed(
            order_id=order["id"],
            user_id=order["user_id"],
            email=order["email"],
            showtime_id=order["showtime_id"],
            starts_at=showtime["starts_at"],
            cinema_name=showtime["cinema_name"],
            hall_name=showtime["hall_name"],
            total=order["total"],
            tickets=[TicketIssued(ticket_id=t[0], seat_label=t[4], code=t[5]) for t in tickets],
        ),
    )
    return None
