"""moto's server: S3, SNS, SQS and SES on one loopback port."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bmt_stack import process
from bmt_stack.components.base import Component, http_health
from bmt_stack.config import HOST


class Moto(Component):
    name = "moto"
    start_timeout = 60.0

    @property
    def port(self) -> int:
        return self.settings.port_moto

    def _server(self) -> str:
        # The virtualenv's script first: the stack may run without the venv activated.
        beside = Path(sys.executable).parent / "moto_server"
        found = str(beside) if beside.exists() else shutil.which("moto_server")
        if found is None:
            raise process.StartError("moto_server is missing: run `make install` (moto[server])")
        return found

    def command(self) -> list[str]:
        return [self._server(), "-H", HOST, "-p", str(self.port)]

    def env(self) -> dict[str, str]:
        # moto needs credentials to exist; they are never checked.
        return {"AWS_ACCESS_KEY_ID": "bmt", "AWS_SECRET_ACCESS_KEY": "bmt"}

    def health(self) -> str | None:
        return http_health(self.port, "/moto-api/data.json")

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"
