"""`python -m bmt_operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import asyncio
import os

import kopf
import prometheus_client

from bmt_common import logs
from bmt_operator import handlers

logs.setup("operator", handlers.SETTINGS.log_level)  # JSON lines, like the services
host, port = os.environ.get("BMT_HOST", "127.0.0.1"), int(os.environ.get("BMT_PORT", "18110"))
prometheus_client.start_http_server(int(os.environ.get("BMT_METRICS_PORT", "18111")), addr=host)
# Standalone: one operator, no peering objects to manage; liveness for probes and `bmt status`.
asyncio.run(
    kopf.operator(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=f"http://{host}:{port}/healthz",
    )
)
