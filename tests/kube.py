"""kubectl against the local API server, for the operator tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

from bmt_stack.config import StackSettings
from support import eventually


class Kube:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.settings.state_dir / "bin" / "kubectl"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=check,
            env={**os.environ, "KUBECONFIG": str(self.settings.kubeconfig)},
        )

    def apply(
        self, *resources: dict[str, Any], check: bool = True, server_only: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """kubectl apply; `server_only` skips kubectl's own checks so the API server judges."""
        document = {"apiVersion": "v1", "kind": "List", "items": list(resources)}
        flags = ["--validate=false"] if server_only else []
        return self.run("apply", *flags, "-f", "-", stdin=json.dumps(document), check=check)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self.run("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    async def condition(
        self,
        kind: str,
        name: str,
        namespace: str,
        reason: str | None = None,
        ready: str = "True",
        within: float = 60.0,
    ) -> dict[str, Any]:
        """The resource once its Ready condition has this status (and reason)."""

        async def reached() -> dict[str, Any] | None:
            found = await asyncio.to_thread(self.get, kind, name, namespace)
            conditions = {
                c["type"]: c for c in ((found or {}).get("status") or {}).get("conditions", [])
            }
            ok = conditions.get("Ready", {})
            if ok.get("status") == ready and (reason is None or ok.get("reason") == reason):
                return found
            return None

        return await eventually(reached, within, f"{kind}/{name} Ready={ready} {reason or ''}")
