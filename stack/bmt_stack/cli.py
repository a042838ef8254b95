"""`bmt stack up | down | status | logs NAME | env`: the local stack from one command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bmt_stack import process
from bmt_stack.components import Component, Tools, all_components
from bmt_stack.config import HOST, StackSettings


def _select(components: list[Component], only: str | None) -> list[Component]:
    """The named components and everything they need, in start order."""
    if not only:
        return components
    by_name = {c.name: c for c in components}
    wanted: set[str] = set()
    pending = [name.strip() for name in only.split(",") if name.strip()]
    while pending:
        name = pending.pop()
        if name not in by_name:
            raise SystemExit(f"unknown component {name!r}; known: {', '.join(by_name)}")
        if name not in wanted:
            wanted.add(name)
            pending.extend(by_name[name].needs)
    return [c for c in components if c.name in wanted]


def up(settings: StackSettings, only: str | None, tools: bool) -> int:
    settings.ensure_dirs()
    chosen = _select(all_components(settings), only)
    started = time.monotonic()
    futures: dict[str, Future[str]] = {}
    lock = threading.Lock()

    def start(component: Component) -> str:
        for need in component.needs:
            if need in futures:
                try:
                    futures[need].result()
                except Exception as exc:
                    raise process.StartError(f"not started: {need} failed") from exc
        begun = time.monotonic()
        outcome = component.up()
        with lock:
            print(f"{component.name:<20} {outcome} ({time.monotonic() - begun:.1f}s)", flush=True)
        return outcome

    # Independent components start side by side; each waits only for what it needs.
    with ThreadPoolExecutor(max_workers=len(chosen) + 1) as pool:
        tools_future = pool.submit(Tools(settings).install) if tools and not only else None
        for component in chosen:
            futures[component.name] = pool.submit(start, component)
        waited: dict[str, Future[Any]] = dict(futures)
        if tools_future is not None:
            waited["kubectl and helm"] = tools_future
        failures = [(name, f.exception()) for name, f in waited.items() if f.exception()]
    if tools_future is not None and tools_future.exception() is None:
        for name, path in tools_future.result().items():
            print(f"{name:<20} {path}")
    for name, error in failures:
        print(f"\n{name} FAILED: {error}", file=sys.stderr)
    print(f"stack up in {time.monotonic() - started:.1f}s; state in {settings.state_dir}")
    return 1 if failures else 0


def down(settings: StackSettings, only: str | None) -> int:
    for component in reversed(_select(all_components(settings), only)):
        stopped = component.down()
        print(f"{component.name:<20} {'stopped' if stopped else 'was not running'}")
    return 0


def status(settings: StackSettings) -> int:
    rows = [("COMPONENT", "PID", "PORT", "HEALTH")]
    unhealthy = 0
    for component in all_components(settings):
        pid = component.pid()
        health = "not running" if pid is None else component.health() or "healthy"
        unhealthy += health != "healthy"
        rows.append((component.name, str(pid or "-"), f"{HOST}:{component.port}", health))
    tools = Tools(settings)
    for name in ("kubectl", "helm"):
        link = tools.bin / name
        ok = link.exists()
        unhealthy += not ok
        rows.append((name, "-", "-", f"installed: {link.resolve()}" if ok else "not installed"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]
        )
    return 1 if unhealthy else 0


def logs(settings: StackSettings, name: str, lines: int, follow: bool) -> int:
    known = {c.name: c for c in all_components(settings)}
    if name not in known:
        raise SystemExit(f"unknown component {name!r}; known: {', '.join(known)}")
    log = known[name].log_file
    if follow:
        return subprocess.call(["tail", "-n", str(lines), "-F", str(log)])
    print(process.tail(log, lines))
    return 0


def env(settings: StackSettings) -> int:
    """Shell exports that point clients at the running stack: `eval "$(bmt stack env)"`."""
    bin_dir = settings.state_dir / "bin"
    print(f"export KUBECONFIG={settings.kubeconfig}")
    print(f'export PATH="{bin_dir}:$PATH"')
    print(f"export BMT_KAFKA_BOOTSTRAP={HOST}:{settings.port_kafka}")
    print(f"export BMT_CONNECT_URL=http://{HOST}:{settings.port_connect}")
    print(f"export BMT_AWS_ENDPOINT=http://{HOST}:{settings.port_moto}")
    print(f"export BMT_POSTGRES_HOST={HOST} BMT_POSTGRES_PORT={settings.port_postgres}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bmt", description="BMT platform command line")
    groups = parser.add_subparsers(dest="group", required=True)
    stack = groups.add_parser("stack", help="the local stack of real components")
    commands = stack.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help="install (first time), start and health-check")
    p_up.add_argument("--only", help="comma-separated components (their needs come too)")
    p_down = commands.add_parser("down", help="stop what `up` started, by pid")
    p_down.add_argument("--only", help="comma-separated components")
    commands.add_parser("status", help="a table: component, pid, port, health")
    p_logs = commands.add_parser("logs", help="the log of one component")
    p_logs.add_argument("name")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true")
    commands.add_parser("env", help="shell exports for kubectl, helm and clients")
    args = parser.parse_args(argv)

    settings = StackSettings()
    os.umask(0o022)
    if args.command == "up":
        return up(settings, args.only, tools=True)
    if args.command == "down":
        return down(settings, args.only)
    if args.command == "status":
        return status(settings)
    if args.command == "logs":
        return logs(settings, args.name, args.lines, args.follow)
    return env(settings)


if __name__ == "__main__":
    sys.exit(main())
