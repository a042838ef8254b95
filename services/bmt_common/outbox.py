"""The outbox writer: an event becomes a row of `outboxes` in the caller's transaction."""

from __future__ import annotations

from bmt_common.db import Connection
from bmt_common.events import Event


async def add(conn: Connection, event: Event) -> int:
    """Record `event`; it is published if and only if the surrounding transaction commits."""
    assert conn.is_in_transaction(), "an outbox row belongs to the transaction of its change"
    event_id: int = await conn.fetchval(
        "INSERT INTO outboxes (aggregate_type, aggregate_id, event_type, event_version, payload)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        event.AGGREGATE,
        event.aggregate_id(),
        event.TYPE,
        event.VERSION,
        event.model_dump_json(),
    )
    return event_id
