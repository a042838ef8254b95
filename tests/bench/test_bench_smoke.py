"""The benchmark suite's smoke run: it works end to end and its checks hold (figures from a
one-second run mean nothing; `make bench` gives the real ones)."""

from __future__ import annotations

import json
import subprocess
import sys

from bmt_stack.config import PROJECT_ROOT, StackSettings


def test_the_benchmark_suite_runs(bmt_platform: StackSettings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bmt_bench", "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| holds via order service, 16 conn |" in result.stdout
    report = json.loads((PROJECT_ROOT / "bench" / "results" / "smoke.json").read_text())
    names = {load["name"] for load in report["loads"]}
    assert {
        "holds via order service, 16 conn",
        "holds via gateway, 16 conn",
        "holds via bare aiohttp+asyncpg, 16 conn",
        "pgbench hold transaction, 16 clients",
    } <= names
    for load in report["loads"]:
        assert load["requests"] > 0, load
        assert load["errors"] == 0, load
        assert not any(status.startswith("5") for status in load["statuses"]), load
    checks = report["figures"]["hold invariants (after each storm)"]
    assert all(check["ok"] for check in checks.values()), checks
    for path in (
        "OTP request -> mail sent",
        "media upload -> URLs stored",
        "IPN -> tickets issued",
    ):
        assert report["figures"][path]["n"] == 3
    assert report["figures"]["operator: apply 20 showtimes -> all Ready"]["ready"] == 20
    assert (PROJECT_ROOT / "bench" / "results" / "smoke.png").stat().st_size > 10_000
