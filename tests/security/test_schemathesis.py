"""Schemathesis against every routed service's OpenAPI document, straight to the service and
through the gateway (its copy of the document, servers=[/]): no 5xx, every status documented,
every response matching its schema. Authenticated as an admin, so that routes needing a role
are reached; each request comes from its own client address (see st_hooks.py).

Bounded: the coverage and fuzzing phases, at most 20 fuzzed examples per operation and a time
budget per run; two runs at a time. Operations that change or delete existing rows (PUT, PATCH,
DELETE, cancel, release, check-in, logout) are left out: random ids would hit the demo data and
other suites' rows, and logout would end the run's own session. The number of cases is printed
(also in the run's figures summary); each failure is reported with its reproducing curl command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
from security.scene import SERVICES, login, service_url

from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import PROJECT_ROOT, StackSettings

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
SECONDS_PER_RUN = 14
EXCLUDED_PATHS = r"(/cancel$|/release$|/check-in$|/logout$)"


async def run(
    name: str, schema: str, base: str, token: str, report: Path
) -> tuple[str, dict[str, object], str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        schema,
        "--url",
        base,
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        CHECKS,
        "--phases",
        "coverage,fuzzing",
        "--max-examples",
        "20",
        "--max-time",
        str(SECONDS_PER_RUN),
        "--seed",
        "20261127",
        "--generation-database",
        "none",
        "--exclude-method",
        "PUT",
        "--exclude-method",
        "PATCH",
        "--exclude-method",
        "DELETE",
        "--exclude-path-regex",
        EXCLUDED_PATHS,
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "security.st_hooks",
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
        ),
        "NO_COLOR": "1",
    }
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=report.parent,  # its crash cache lands there, not in the repository
    )
    output, _ = await asyncio.wait_for(process.communicate(), SECONDS_PER_RUN * 6)
    text = await asyncio.to_thread(lambda: report.read_text() if report.exists() else "")
    assert text, output.decode()[-3000:]
    return name, json.loads(text), output.decode()


def essentials(output: str) -> list[str]:
    """The operation, the check and the reproducing request of each failure."""
    keep = re.compile(r"^(_{3,} .* _{3,}|- ST\d+ .*|\s+Received: .*|\s+curl .*)$")
    return [line.strip() for line in output.splitlines() if keep.match(line)][:40]


async def test_every_document_holds_under_schemathesis(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    gateway: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
    figure: Callable[[str], None],
) -> None:
    token = await login(
        http, service_url(bmt_platform, "user"), ADMIN_EMAIL, Secrets(bmt_platform).admin_password()
    )
    slots = asyncio.Semaphore(2)

    async def limited(name: str, schema: str, base: str) -> tuple[str, dict[str, object], str]:
        async with slots:
            return await run(name, schema, base, token, tmp_path / f"{name}.json")

    runs = []
    for service in SERVICES:
        direct = service_url(bmt_platform, service)
        runs.append(limited(f"{service}-direct", f"{direct}/openapi.json", direct))
        runs.append(
            limited(f"{service}-gateway", f"{gateway}/docs/openapi/{service}.json", gateway)
        )
    results = await asyncio.gather(*runs)
    total, failures, lines = 0, [], []
    for name, report, output in sorted(results):
        cases = report["test_cases"]
        assert isinstance(cases, dict)
        operations = report["operations"]
        assert isinstance(operations, dict)
        total += int(cases["generated"])
        found = report["failures"]
        assert isinstance(found, list)
        lines.append(
            f"  {name:18} {operations['tested']:>3} operations {cases['generated']:>6} cases"
            f" {len(found)} failure kinds, {cases['errored']} errored"
        )
        if found or cases["errored"]:
            failures.append(f"--- {name}: {found}\n" + "\n".join(essentials(output)))
    figure(f"\n[schemathesis] {total} cases run\n" + "\n".join(lines))
    record_property("schemathesis_cases", total)
    assert total > 0
    assert not failures, "\n".join(failures)
