"""The payment service's SQL. Every function takes the connection (and so the transaction)
to use."""

from __future__ import annotations

import datetime as dt
import json

import asyncpg

from bmt_common.db import Connection


# Orders (the local copy)
async def insert_order(
    conn: Connection,
    order_id: int,
    user_id: int,
    total: int,
    status: str,
    expires_at: dt.datetime,
) -> None:
    """From OrderCreated; a copy already refreshed by a payment is newer and stays."""
    await conn.execute(
        "INSERT INTO orders (id, user_id, total, status, expires_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (id) DO NOTHING",
        order_id,
        user_id,
        total,
        status,
        expires_at,
    )


async def upsert_order(
    conn: Connection,
    order_id: int,
    user_id: int,
    total: int,
    status: str,
    expires_at: dt.datetime,
) -> str:
    """From the order service's answer; returns the local status, which a closed order keeps
    (closing is final, and its event may have overtaken the read)."""
    local: str = await conn.fetchval(
        "INSERT INTO orders (id, user_id, total, status, expires_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, total = excluded.total,"
        " expires_at = excluded.expires_at, updated_at = now(),"
        " status = CASE WHEN orders.status IN ('expired', 'cancelled') THEN orders.status"
        " ELSE excluded.status END"
        " RETURNING status",
        order_id,
        user_id,
        total,
        status,
        expires_at,
    )
    return local


async def close_order(conn: Connection, order_id: int, reason: str) -> None:
    await conn.execute(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = 'pending'",
        order_id,
        reason,
    )


async def order_for_update(conn: Connection, order_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, user_id, total, status, expires_at FROM orders WHERE id = $1 FOR UPDATE",
        order_id,
    )


async def order_paid(conn: Connection, order_id: int, other_than: int = 0) -> bool:
    paid: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM payments WHERE order_id = $1 AND id <> $2"
        " AND status = 'succeeded')",
        order_id,
        other_than,
    )
    return paid


# Payments
async def create_payment(
    conn: Connection, order_id: int, user_id: int, provider: str, amount: int, suffix: str
) -> asyncpg.Record:
    """A new payment; its gateway reference is BMT<id><suffix>, unique by its id."""
    row = await conn.fetchrow(
        "WITH next AS (SELECT nextval(pg_get_serial_sequence('payments', 'id')) AS id)"
        " INSERT INTO payments (id, order_id, user_id, provider, amount, txn_ref)"
        " SELECT id, $1, $2, $3, $4, 'BMT' || id::text || $5 FROM next"
        " RETURNING id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason",
        order_id,
        user_id,
        provider,
        amount,
        suffix,
    )
    assert row is not None
    return row


async def fail_unopened(conn: Connection, payment_id: int, failure: str) -> None:
    """The gateway refused to open the payment: nobody can pay it."""
    await conn.execute(
        "UPDATE payments SET status = 'failed', failure = $2 WHERE id = $1 AND status = 'created'",
        payment_id,
        failure,
    )


async def payment_by_id(conn: Connection, payment_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason FROM payments WHERE id = $1",
        payment_id,
    )


async def payment_by_txn_ref(conn: Connection, txn_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason"
        " FROM payments WHERE txn_ref = $1",
        txn_ref,
    )


async def payment_by_txn_ref_for_update(conn: Connection, txn_ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason"
        " FROM payments WHERE txn_ref = $1 FOR UPDATE",
        txn_ref,
    )


async def record_callback(
    conn: Connection,
    *,
    provider: str,
    transaction_no: str,
    payment_id: int,
    result_code: str,
    params: dict[str, str],
) -> bool:
    """False when this gateway transaction was already recorded (a retried callback)."""
    fresh: bool | None = await conn.fetchval(
        "INSERT INTO gateway_callbacks (provider, transaction_no, payment_id, result_code, params)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (provider, transaction_no) DO NOTHING"
        " RETURNING true",
        provider,
        transaction_no,
        payment_id,
        result_code,
        json.dumps(params),
    )
    return bool(fresh)


async def mark_succeeded(
    conn: Connection, payment_id: int, transaction_no: str, paid_at: dt.datetime
) -> None:
    await conn.execute(
        "UPDATE payments SET status = 'succeeded', transaction_no = $2, paid_at = $3 WHERE id = $1",
        payment_id,
        transaction_no,
        paid_at,
    )


async def mark_paid_late(
    conn: Connection, payment_id: int, transaction_no: str, paid_at: dt.datetime, reason: str
) -> None:
    """Money arrived that its order cannot take: it is to be refunded."""
    await conn.execute(
        "UPDATE payments SET status = 'refund_pending', transaction_no = $2, paid_at = $3,"
        " refund_reason = $4 WHERE id = $1",
        payment_id,
        transaction_no,
        paid_at,
        reason,
    )


async def mark_failed(conn: Connection, payment_id: int, transaction_no: str, failure: str) -> None:
    await conn.execute(
        "UPDATE payments SET status = 'failed', transaction_no = nullif($2, ''), failure = $3"
        " WHERE id = $1",
        payment_id,
        transaction_no,
        failure,
    )


async def request_refund(conn: Connection, payment_id: int, order_id: int, reason: str) -> bool:
    """A succeeded payment of `order_id` is to be refunded; False if there is no such payment."""
    found: bool | None = await conn.fetchval(
        "UPDATE payments SET status = 'refund_pending', refund_reason = $3"
        " WHERE id = $1 AND order_id = $2 AND status = 'succeeded' RETURNING true",
        payment_id,
        order_id,
        reason,
    )
    return bool(found)


async def claim_refund(
    conn: Connection, payment_id: int, lease_seconds: float
) -> asyncpg.Record | None:
    """Take the refund of a payment for `lease_seconds`, or None if it is not due (another
    worker holds it, or there is nothing to refund). Run it in a transaction."""
    # Lock first: a transaction that is making the payment refund_pending right now is waited
    # for (an UPDATE alone would judge the row by its old, still visible status).
    await conn.execute("SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", payment_id)
    return await conn.fetchrow(
        "UPDATE payments SET refund_attempt_at = now() WHERE id = $1 AND status = 'refund_pending'"
        " AND (refund_attempt_at IS NULL"
        " OR refund_attempt_at < now() - make_interval(secs => $2))"
        " RETURNING id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason",
        payment_id,
        lease_seconds,
    )


async def mark_refunded(conn: Connection, payment_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE payments SET status = 'refunded', refunded_at = now()"
        " WHERE id = $1 AND status = 'refund_pending'"
        " RETURNING id, order_id, user_id, provider, amount, status, txn_ref, transaction_no,"
        " created_at, paid_at, refunded_at, failure, refund_reason",
        payment_id,
    )


async def refunds_due(conn: Connection, lease_seconds: float, limit: int = 100) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM payments WHERE status = 'refund_pending' AND (refund_attempt_at IS NULL"
        " OR refund_attempt_at < now() - make_interval(secs => $1)) ORDER BY id LIMIT $2",
        lease_seconds,
        limit,
    )
    return [row["id"] for row in rows]
