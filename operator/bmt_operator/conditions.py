"""Ready and Synced conditions, each carrying the generation it describes."""

from __future__ import annotations

import datetime as dt
from typing import Any


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    previous: list[dict[str, Any]], kind: str, ok: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), {})
    # The transition time moves only when the status does.
    since = old.get("lastTransitionTime") if old.get("status") == status else None
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since or _now(),
    }


def conditions(
    status: dict[str, Any] | None,
    generation: int,
    *,
    ready: bool,
    reason: str,
    message: str,
    synced: bool = True,
    synced_reason: str = "Synced",
    synced_message: str = "the world matches the spec",
) -> list[dict[str, Any]]:
    previous = list((status or {}).get("conditions") or [])
    return [
        condition(previous, "Ready", ready, reason, message, generation),
        condition(previous, "Synced", synced, synced_reason, synced_message, generation),
    ]
