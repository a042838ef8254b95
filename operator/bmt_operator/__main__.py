"""`python -m bmt_operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import asyncio
import os
import sys

import kopf
import prometheus_client

from bmt_common import logs
from bmt_operator import handlers, leader
from bmt_operator.metrics import LEADER

SETTINGS = handlers.SETTINGS
logs.setup("operator", SETTINGS.log_level)  # JSON lines, like the services
host, port = os.environ.get("BMT_HOST", "127.0.0.1"), int(os.environ.get("BMT_PORT", "18110"))
prometheus_client.start_http_server(int(os.environ.get("BMT_METRICS_PORT", "18111")), addr=host)


async def operator(stop: asyncio.Event | None = None) -> None:
    # Standalone: no Kopf peering (leader.py decides who runs); liveness for probes and `bmt
    # status`.
    await kopf.operator(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=f"http://{host}:{port}/healthz",
        stop_flag=stop,
    )


async def elected() -> int:
    namespace = leader.namespace()
    store = leader.KubeLeases(namespace, SETTINGS.leader_lease)
    elector = leader.Elector(
        store, name=SETTINGS.leader_lease, namespace=namespace, identity=leader.identity()
    )
    try:
        return await leader.run(operator, elector, host=host, port=port)
    finally:
        await store.close()


if SETTINGS.leader_election:
    sys.exit(asyncio.run(elected()))
LEADER.set(1)  # the only operator
asyncio.run(operator())
