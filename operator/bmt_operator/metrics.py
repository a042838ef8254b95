"""Prometheus metrics of the operator, served on `BMT_METRICS_PORT` (Kopf's liveness endpoint
holds `BMT_PORT`): how many reconciles ended how, per kind, and how long they took, and whether
this replica is the leader."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import kopf
from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "bmt_operator_reconciles_total",
    "Reconciles by kind and result: ready, the reason of Ready=False, retry, or error.",
    ["kind", "result"],
)
SECONDS = Histogram(
    "bmt_operator_reconcile_seconds",
    "Time of one reconcile, writes to the services and the cloud included.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LEADER = Gauge(
    "bmt_operator_leader",
    "1 while this replica runs Kopf (the leader, or the only one), 0 while it stands by.",
)


class HasStatusPatch(Protocol):
    patch: kopf.Patch


C = TypeVar("C", bound=HasStatusPatch)


def measured(
    kind: str,
) -> Callable[[Callable[[C], Awaitable[None]]], Callable[[C], Awaitable[None]]]:
    """Counts and times each run of a reconcile of `kind` by how it left the resource."""

    def wrap(reconcile: Callable[[C], Awaitable[None]]) -> Callable[[C], Awaitable[None]]:
        @functools.wraps(reconcile)
        async def run(ctx: C) -> None:
            started, result = time.perf_counter(), "error"
            try:
                await reconcile(ctx)
                result = _ready_result(ctx.patch.status.get("conditions"))
            except kopf.TemporaryError:
                result = "retry"
                raise
            finally:
                RECONCILES.labels(kind, result).inc()
                SECONDS.labels(kind).observe(time.perf_counter() - started)

        return run

    return wrap


def _ready_result(conditions: Any) -> str:
    ready = next((c for c in conditions or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return "unchanged"
    return "ready" if ready.get("status") == "True" else str(ready.get("reason", "not ready"))
