"""`python -m bmt_operator`: run the operator against the cluster of the current kubeconfig."""

from __future__ import annotations

import asyncio
import os

import kopf

from bmt_common import logs
from bmt_operator import handlers

logs.setup("operator", handlers.SETTINGS.log_level)  # JSON lines, like the services
port = int(os.environ.get("BMT_PORT", "18110"))
# Standalone: one operator, no peering objects to manage; liveness for probes and `bmt status`.
asyncio.run(
    kopf.operator(
        clusterwide=True,
        standalone=True,
        liveness_endpoint=f"http://{os.environ.get('BMT_HOST', '127.0.0.1')}:{port}/healthz",
    )
)
