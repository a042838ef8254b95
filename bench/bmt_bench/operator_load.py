"""The operator under load: `kubectl apply` of many showtimes to all Ready, and its idle CPU."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

from bmt_stack.config import StackSettings


def _kubectl(settings: StackSettings, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        [str(settings.state_dir / "bin" / "kubectl"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KUBECONFIG": str(settings.kubeconfig)},
    ).stdout


def _ready(settings: StackSettings, namespace: str, kind: str) -> int:
    items = json.loads(_kubectl(settings, "get", kind, "-n", namespace, "-o", "json"))["items"]
    return sum(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (i.get("status") or {}).get("conditions", [])
        )
        for i in items
    )


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def apply_to_ready(
    settings: StackSettings, count: int, within: float = 600.0
) -> dict[str, Any]:
    namespace = f"bench-{secrets.token_hex(3)}"
    _kubectl(settings, "create", "namespace", namespace)
    base = {"apiVersion": "bmt.dev/v1alpha1", "metadata": {"namespace": namespace}}
    setup = [
        {
            **base,
            "kind": "Cinema",
            "metadata": {"name": "c", "namespace": namespace},
            "spec": {
                "name": f"Bench {namespace}",
                "city": "B",
                "address": "B",
                "halls": [{"name": "H", "rows": [{"label": "A", "seats": 10, "price": 1}]}],
            },
        },
        {
            **base,
            "kind": "Film",
            "metadata": {"name": "f", "namespace": namespace},
            "spec": {
                "title": "Bench",
                "durationMinutes": 60,
                "releaseDate": "2026-12-01",
                "ageRating": "P",
            },
        },
    ]
    _kubectl(
        settings,
        "apply",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": setup}),
    )
    deadline = time.monotonic() + 60
    while min(_ready(settings, namespace, "films"), _ready(settings, namespace, "cinemas")) < 1:
        if time.monotonic() > deadline:
            raise RuntimeError("the bench film and cinema did not become Ready")
        await asyncio.sleep(0.2)
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(days=60)
    showtimes = [
        {
            **base,
            "kind": "Showtime",
            "metadata": {"name": f"s{i}", "namespace": namespace},
            "spec": {
                "filmRef": "f",
                "cinemaRef": "c",
                "hall": "H",
                "released": True,
                "startsAt": (start + dt.timedelta(minutes=80 * i)).isoformat(),
            },
        }
        for i in range(count)
    ]
    started = time.monotonic()
    _kubectl(
        settings,
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": showtimes}),
    )
    applied = time.monotonic() - started
    deadline = started + within
    ready = 0
    while ready < count and time.monotonic() < deadline:
        ready = await asyncio.to_thread(_ready, settings, namespace, "showtimes")
        await asyncio.sleep(0.5)
    elapsed = time.monotonic() - started
    return {
        "namespace": namespace,
        "showtimes": count,
        "apply_s": round(applied, 1),
        "all_ready_s": round(elapsed, 1),
        "ready": ready,
    }


async def idle_cpu(settings: StackSettings, seconds: float) -> float:
    """The operator's CPU use, in percent of one core, while nothing changes."""
    pid = int((settings.run / "operator.pid").read_text().split()[0])
    before, t0 = _cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return round(100 * (_cpu_seconds(pid) - before) / (time.monotonic() - t0), 1)


def cleanup(settings: StackSettings, namespace: str) -> None:
    _kubectl(settings, "delete", "namespace", namespace, "--wait=false")
