"""Kubernetes Events of what the operator did, posted on the resource they concern."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from functools import cache
from typing import Any

from kubernetes import client, config

log = logging.getLogger(__name__)


@cache
def _api() -> client.CoreV1Api:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.CoreV1Api()


def _post(body: Any, kind: str, reason: str, message: str) -> None:
    meta = body["metadata"]
    now = dt.datetime.now(dt.UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(
            name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=meta["namespace"]
        ),
        involved_object=client.V1ObjectReference(
            api_version=body["apiVersion"],
            kind=body["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            resource_version=meta.get("resourceVersion"),
        ),
        reason=reason,
        message=message[:1024],
        type=kind,
        source=client.V1EventSource(component="bmt-operator"),
        first_timestamp=now,
        last_timestamp=now,
        count=1,
    )
    _api().create_namespaced_event(meta["namespace"], event)


async def record(body: Any, reason: str, message: str, *, warning: bool = False) -> None:
    """Post an Event; a failure to post is logged, never fatal to a reconcile."""
    try:
        await asyncio.to_thread(_post, body, "Warning" if warning else "Normal", reason, message)
    except Exception as exc:
        log.warning("could not post the event %s: %s", reason, exc)
