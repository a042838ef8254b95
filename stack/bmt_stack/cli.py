"""The `bmt` command.

bmt up | down | status | logs NAME     the whole local platform (stack + BMT's services)
bmt cluster up                         the platform as pods of a real local cluster (helm)
bmt demo [--url GATEWAY]               the three flows, played as a client
bmt stack up | down | status | logs    the stack of real components alone
bmt stack env                          shell exports for kubectl, helm and clients
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bmt_operator.provision import Plan
from bmt_stack import cluster, demo, platform, process
from bmt_stack.components import Component, Tools, all_components
from bmt_stack.components.node import NodeNetwork, node_components, teardown
from bmt_stack.components.services import SPECS, Secrets, service_components
from bmt_stack.config import HOST, PROJECT_ROOT, StackSettings


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
            pending.extend(n for n in by_name[name].needs if n in by_name)
    return [c for c in components if c.name in wanted]


def _start(chosen: list[Component], tools: Tools | None) -> list[tuple[str, BaseException]]:
    """Start side by side, each component once what it needs is up; returns the failures."""
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

    with ThreadPoolExecutor(max_workers=len(chosen) + 1) as pool:
        tools_future = pool.submit(tools.install) if tools else None
        for component in chosen:
            futures[component.name] = pool.submit(start, component)
        waited: dict[str, Future[Any]] = dict(futures)
        if tools_future is not None:
            waited["kubectl and helm"] = tools_future
        failures = [(name, f.exception()) for name, f in waited.items() if f.exception()]
    if tools_future is not None and tools_future.exception() is None:
        for name, path in tools_future.result().items():
            print(f"{name:<20} {path}")
    return [(name, error) for name, error in failures if error is not None]


def _report(
    failures: list[tuple[str, BaseException]], started: float, settings: StackSettings
) -> int:
    for name, error in failures:
        print(f"\n{name} FAILED: {error}", file=sys.stderr)
    print(f"up in {time.monotonic() - started:.1f}s; state in {settings.state_dir}")
    return 1 if failures else 0


def up(settings: StackSettings, only: str | None, tools: bool) -> int:
    """The stack of real components."""
    settings.ensure_dirs()
    started = time.monotonic()
    chosen = _select(all_components(settings), only)
    failures = _start(chosen, Tools(settings) if tools and not only else None)
    return _report(failures, started, settings)


def platform_up(settings: StackSettings) -> int:
    """The stack, then what the platform needs inside it, then BMT's services."""
    started = time.monotonic()
    if up(settings, None, tools=True):
        return 1
    cluster.leave(settings)
    plan = Plan()
    print("provisioning topics and the S3 -> SNS -> SQS media wiring", flush=True)
    asyncio.run(platform.provision(settings, plan))
    print("applying the CRDs", flush=True)
    platform.kubectl_apply(settings, PROJECT_ROOT / "crds")
    services = service_components(settings)
    failures = _start(services, None)
    if not failures:
        databases = [spec.database for spec in SPECS if spec.database]
        print(f"registering Debezium connectors for {', '.join(databases)}", flush=True)
        try:
            asyncio.run(platform.ensure_connectors(settings, databases))
            asyncio.run(platform.upload_example_media(settings))
            print("seeding the demo catalogue (a cinema, films, showtimes tomorrow)", flush=True)
            asyncio.run(demo.seed(settings))
            print("applying examples/ (the operator reconciles them)", flush=True)
            platform.kubectl_apply(settings, PROJECT_ROOT / "examples")
        except (RuntimeError, demo.DemoError) as exc:
            failures.append(("platform set-up", exc))
    code = _report(failures, started, settings)
    if not code:
        print('kubectl: eval "$(.venv/bin/bmt stack env)"; kubectl get cinemas,films,showtimes\n')
        print(
            f"gateway: http://{HOST}:{settings.port_gateway}  docs: "
            f"http://{HOST}:{settings.port_gateway}/docs\n"
            f"admin: admin@bmt.local, password in {Secrets(settings).admin_password_file}"
        )
    return code


def cluster_up(settings: StackSettings) -> int:
    """The stack, the node beside it, then BMT installed by its chart as the node's pods."""
    started = time.monotonic()
    if up(settings, None, tools=True):
        return 1
    cluster.take_over(settings)
    failures = _start(node_components(settings), None)
    if not failures:
        failures = cluster.install_platform(settings)
    code = _report(failures, started, settings)
    if not code:
        print(cluster.pods_table(settings))
        gateway = settings.cluster_gateway
        print(
            f"gateway (NodePort): {gateway}  docs: {gateway}/docs\n"
            f"play the flows: .venv/bin/bmt demo --url {settings.cluster_gateway}\n"
            'kubectl: eval "$(.venv/bin/bmt stack env)"; kubectl -n bmt get pods\n'
            "back to host processes: .venv/bin/bmt up"
        )
    return code


def platform_down(settings: StackSettings, components: list[Component]) -> int:
    for line in teardown(settings):
        print(f"{'node':<20} {line}")
    return down(components)


def down(components: list[Component]) -> int:
    for component in reversed(components):
        stopped = component.down()
        print(f"{component.name:<20} {'stopped' if stopped else 'was not running'}")
    return 0


def status(settings: StackSettings, components: list[Component]) -> int:
    rows = [("COMPONENT", "PID", "PORT", "HEALTH")]
    unhealthy = 0
    for component in components:
        pid = component.pid()
        health = "not running" if pid is None else component.health() or "healthy"
        unhealthy += health != "healthy"
        where = f"{component.host}:{component.port}" if component.port else "-"
        rows.append((component.name, str(pid or "-"), where, health))
    # The node network is the machine's; only the stack that took it over owns its pods.
    if cluster.active(settings):
        print(cluster.pods_table(settings))
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


def logs(components: list[Component], name: str, lines: int, follow: bool) -> int:
    known = {c.name: c for c in components}
    if name not in known:
        raise SystemExit(f"unknown component {name!r}; known: {', '.join(known)}")
    log = known[name].log_file
    if follow:
        return subprocess.call(["tail", "-n", str(lines), "-F", str(log)])
    print(process.tail(log, lines))
    return 0


def env(settings: StackSettings) -> int:
    """Shell exports that point clients at the running stack: `eval "$(bmt stack env)"`."""
    print(f"export KUBECONFIG={settings.kubeconfig}")
    print(f'export PATH="{settings.state_dir / "bin"}:$PATH"')
    print(f"export BMT_KAFKA_BOOTSTRAP={HOST}:{settings.port_kafka}")
    print(f"export BMT_CONNECT_URL=http://{HOST}:{settings.port_connect}")
    print(f"export BMT_AWS_ENDPOINT=http://{HOST}:{settings.port_moto}")
    print(f"export BMT_GATEWAY_URL=http://{HOST}:{settings.port_gateway}")
    return 0


def _commands(parser: argparse.ArgumentParser, what: str) -> None:
    commands = parser.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help=f"install (first time), start and health-check {what}")
    p_down = commands.add_parser("down", help=f"stop {what}, by pid")
    if what == "the stack":
        p_up.add_argument("--only", help="comma-separated components (their needs come too)")
        p_down.add_argument("--only", help="comma-separated components")
        commands.add_parser("env", help="shell exports for kubectl, helm and clients")
    commands.add_parser("status", help="a table: component, pid, port, health")
    p_logs = commands.add_parser("logs", help="the log of one component")
    p_logs.add_argument("name")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bmt", description="BMT platform command line")
    groups = parser.add_subparsers(dest="group", required=True)
    stack = groups.add_parser("stack", help="the stack of real components alone")
    _commands(stack, "the stack")
    groups.add_parser("up", help="bring the whole local platform up, with demo data")
    p_cluster = groups.add_parser("cluster", help="BMT as pods of a real local cluster")
    p_cluster.add_argument("command", choices=["up"])
    p_demo = groups.add_parser("demo", help="play the three workshop flows as a client")
    p_demo.add_argument("--url", help="the gateway to play against (default: the host's)")
    groups.add_parser("down", help="stop the whole local platform")
    groups.add_parser("status", help="every component and service: pid, port, health")
    p_logs = groups.add_parser("logs", help="the log of one component or service")
    p_logs.add_argument("name")
    p_logs.add_argument("-n", "--lines", type=int, default=50)
    p_logs.add_argument("-f", "--follow", action="store_true")
    args = parser.parse_args(argv)

    settings = StackSettings()
    os.umask(0o022)
    infra = all_components(settings)
    node = node_components(settings)
    everything = infra + service_components(settings)
    if NodeNetwork.present() or any(c.pid() for c in node):
        everything += node
    if args.group == "stack":
        if args.command == "up":
            return up(settings, args.only, tools=True)
        if args.command == "down":
            return down(_select(infra, args.only))
        if args.command == "status":
            return status(settings, infra)
        if args.command == "logs":
            return logs(everything, args.name, args.lines, args.follow)
        return env(settings)
    if args.group == "up":
        return platform_up(settings)
    if args.group == "cluster":
        return cluster_up(settings)
    if args.group == "demo":
        return demo.run(settings, args.url)
    if args.group == "down":
        return platform_down(settings, [c for c in everything if c not in node])
    if args.group == "status":
        return status(settings, everything)
    return logs(everything, args.name, args.lines, args.follow)


if __name__ == "__main__":
    sys.exit(main())
