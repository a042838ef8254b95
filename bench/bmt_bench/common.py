"""What every benchmark shares: the load tool, the machine, the figures."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LUA = Path(__file__).parent / "lua"


@dataclass
class Load:
    """One load run: requests, statuses and latency percentiles (milliseconds)."""

    name: str
    connections: int
    seconds: float
    requests: int
    errors: int
    statuses: dict[str, int]
    latency_ms: dict[str, float]

    def per_second(self, *statuses: str) -> float:
        count = sum(self.statuses.get(s, 0) for s in statuses) if statuses else self.requests
        return count / self.seconds if self.seconds else 0.0

    @property
    def p99(self) -> float:
        return self.latency_ms.get("99", 0.0)


@dataclass
class Report:
    machine: dict[str, Any]
    loads: list[Load] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "machine": self.machine,
                "loads": [vars(load) for load in self.loads],
                "figures": self.figures,
            },
            indent=2,
            default=str,
        )


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    cpu = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def wrk_binary() -> str:
    """wrk from Debian's packages, installed on first use."""
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "wrk"], check=True, env=env, capture_output=True
    )
    found = shutil.which("wrk")
    assert found, "wrk did not install"
    return found


def wrk(
    name: str, base_url: str, script: str, connections: int, seconds: float, env: dict[str, str]
) -> Load:
    """Run wrk with one of our Lua scripts; its done() prints one BMT_RESULT JSON line."""
    result = subprocess.run(
        [
            wrk_binary(),
            "-t",
            str(min(2, connections)),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA / script),
            base_url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("BMT_RESULT "))
    raw = json.loads(line.removeprefix("BMT_RESULT "))
    return Load(
        name=name,
        connections=connections,
        seconds=raw["seconds"],
        requests=raw["requests"],
        errors=raw["errors"],
        statuses={str(k): int(v) for k, v in raw["statuses"].items()},
        latency_ms={str(k): v / 1000 for k, v in raw["latency_us"].items()},
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
