"""What every component of the stack has: install, prepare, start, health, stop."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
from abc import ABC, abstractmethod
from pathlib import Path

from bmt_stack import process
from bmt_stack.config import HOST, StackSettings


class Component(ABC):
    """A long-running process of the stack, started detached and tracked by its pid file."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    start_timeout: float = 90.0
    needs: tuple[str, ...] = ()
    # Where its port listens: loopback, or the node's address for the cluster's daemons.
    host: str = HOST

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def pid_file(self) -> Path:
        return self.settings.run / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.logs / f"{self.name}.log"

    @property
    def data_dir(self) -> Path:
        return self.settings.data / self.name

    def install(self) -> None:
        """Fetch or build what the component runs (cached; cheap when already done)."""

    def prepare(self) -> None:
        """Write configuration and initialise data before a start (idempotent)."""

    @abstractmethod
    def command(self) -> list[str]: ...

    def env(self) -> dict[str, str]:
        return {}

    def run_as(self) -> str | None:
        return None

    @abstractmethod
    def health(self) -> str | None:
        """None when healthy, else why not, in a few words."""

    def after_start(self) -> None:
        """Provision what the stack needs inside the running component (idempotent)."""

    def pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def up(self) -> str:
        """Start unless already running and healthy; returns what was done."""
        self.install()
        if self.pid() is not None:
            try:
                self._wait_healthy()
            except process.StartError:
                if self.pid() is not None:
                    raise
                # It was dying when we looked (a crash not yet reaped): start it afresh.
            else:
                self.after_start()
                return "already running"
        # A process that has just died may hold its port for a moment more.
        if self.port and not process.wait_for(lambda: not port_open(self.port, self.host), 15.0):
            raise process.StartError(
                f"{self.name}: port {self.host}:{self.port} is taken by a process the stack did "
                f"not start; stop it or choose another port (BMT_PORT_*)"
            )
        self.prepare()
        process.spawn(
            self.command(),
            pid_file=self.pid_file,
            log_file=self.log_file,
            env=self.env(),
            cwd=self.data_dir if self.data_dir.exists() else None,
            user=self.run_as(),
        )
        self._wait_healthy()
        self.after_start()
        return "started"

    def _wait_healthy(self) -> None:
        reasons: list[str] = []

        def ready() -> bool:
            if self.pid() is None:
                return True  # died: stop waiting, reported below
            reason = self.health()
            reasons.append(reason or "")
            return reason is None

        process.wait_for(ready, self.start_timeout, interval=0.25)
        if self.pid() is None:
            raise process.StartError(
                f"{self.name} exited during start-up; last lines of {self.log_file}:\n"
                + process.tail(self.log_file)
            )
        if reasons and reasons[-1]:
            raise process.StartError(
                f"{self.name} not healthy after {self.start_timeout:.0f}s ({reasons[-1]}); "
                f"last lines of {self.log_file}:\n" + process.tail(self.log_file)
            )

    def down(self) -> bool:
        return process.stop(self.pid_file, self.stop_signal)


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_get(
    port: int,
    path: str,
    *,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    host: str = HOST,
) -> tuple[int, str]:
    """A GET on `host` (loopback); returns (status, body). Raises OSError when nothing answers."""
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection(host, port, timeout=3, context=tls)
        if tls
        else http.client.HTTPConnection(host, port, timeout=3)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def http_health(port: int, path: str, **kwargs: object) -> str | None:
    try:
        status, body = http_get(port, path, **kwargs)  # type: ignore[arg-type]
    except OSError as exc:
        return f"no answer on port {port}: {exc.strerror or exc}"
    if status != 200:
        return f"GET {path} answered {status}: {body[:120]}"
    return None


def is_root() -> bool:
    return os.geteuid() == 0
