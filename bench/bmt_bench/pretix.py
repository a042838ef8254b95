"""The peer users would pick instead: pretix, beside BMT, on the same machine and the same load.

pretix is installed on first use into a virtualenv of its own (`<cache>/pretix-<version>/venv`,
a `.complete` marker written last); it is never a dependency of BMT. Its state (pretix.cfg, its
data folder, the gunicorn log) lives in `.bmt/bench/pretix/`, its tables in the PostgreSQL
database `bench_pretix` (owned by `bmt`) of the local platform. No celery: without a broker pretix
runs its tasks synchronously in the web worker. No redis either (its guide lists one; the platform
has none): pretix then caches nothing, so its figures may be somewhat pessimistic. No mail leaves
(orders are created with `send_email: false`, and the SMTP host is a closed local port).

`rebuild` (compiled translations, collected and compressed static files) is skipped: the REST API
renders no page and needs none of it; the seating plan is validated against the JSON schema that
Django's static finders read from the installed package.

The storm: one live event with a plan of 2,000 seats; wrk with `lua/pretix_orders.lua` creates
orders of 1-4 random seats through pretix's REST API for each connection count, after a 2-second
unmeasured warm-up; the event's orders are deleted before each run; after each run SQL checks that
no seat is in two live orders. pretix answers 201 for an order, 400 for a taken seat ("The selected
seat ... is not available."), 409 when it could not lock a seat within 3 s.

    .venv/bin/python -m bmt_bench.pretix --seconds 5 --connections 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bmt_bench.common import Load, machine, wrk
from bmt_stack.config import HOST, StackSettings
from bmt_stack.install import is_complete, mark_complete, say, step

VERSION = "2026.8.0"  # the newest pretix on PyPI; requires Python >= 3.11
GUNICORN = "27.0.1"
PORT = 18200
URL = f"http://{HOST}:{PORT}"
DATABASE = "bench_pretix"
SETUP_SCRIPT = Path(__file__).with_name("pretix_setup.py")
# The deployment guide (doc/admin/installation/manual_smallscale.rst) runs
#   gunicorn pretix.wsgi --name pretix --workers 5 --max-requests 1200 --max-requests-jitter 50
# and pretix's Docker image (deployment/docker/pretix.bash) uses 2 * nproc workers. We take
# gunicorn's own rule, 2 * cores + 1: the guide's 5 on a 2-core machine.
WORKERS = 2 * (os.cpu_count() or 1) + 1


@dataclass(frozen=True)
class Pretix:
    """Where one pretix installation and its state live."""

    settings: StackSettings
    venv: Path

    @property
    def state(self) -> Path:
        return self.settings.state_dir / "bench" / "pretix"

    @property
    def config(self) -> Path:
        return self.state / "pretix.cfg"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        """Its own interpreter and settings; nothing of BMT's virtualenv leaks in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
        }
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env["PRETIX_CONFIG_FILE"] = str(self.config)
        env["DJANGO_SETTINGS_MODULE"] = "pretix.settings"
        return env

    def run(self, *argv: str | Path) -> str:
        result = subprocess.run(
            [str(a) for a in argv],
            cwd=self.state,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            out = (result.stdout + result.stderr).strip().splitlines()
            raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n" + "\n".join(out[-30:]))
        return result.stdout

    def script(self, mode: str, seats: int) -> dict[str, Any]:
        """Run pretix_setup.py in pretix's virtualenv; its JSON answer."""
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "out.json"
            # -I: the script's folder (bmt_bench, with its platform.py) must not shadow the stdlib
            self.run(self.python, "-I", SETUP_SCRIPT, mode, "--seats", str(seats), "--out", out)
            answer: dict[str, Any] = json.loads(out.read_text())
        return answer


def install(settings: StackSettings) -> Path:
    """pretix and gunicorn in a virtualenv of their own, once per version; the venv's path."""
    folder = settings.cache_dir / f"pretix-{VERSION}"
    venv = folder / "venv"
    if is_complete(folder):
        return venv
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    python = sys.executable if sys.version_info[:2] == (3, 11) else shutil.which("python3.11")
    assert python, "pretix's virtualenv needs Python 3.11"
    with step(f"pretix {VERSION}: pip install into {venv} (first run only, a minute or two)"):
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
        result = subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                f"pretix=={VERSION}",
                f"gunicorn=={GUNICORN}",
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pip install pretix=={VERSION} failed:\n{result.stderr[-3000:]}")
        freeze = subprocess.run(
            [str(venv / "bin" / "pip"), "freeze"], capture_output=True, text=True, check=True
        )
        (folder / "requirements.txt").write_text(freeze.stdout)
    mark_complete(folder)
    return venv


def dsn(settings: StackSettings, database: str) -> str:
    password = settings.postgres_password.get_secret_value()
    return f"postgresql://bmt:{password}@{HOST}:{settings.port_postgres}/{database}"


async def ensure_database(settings: StackSettings) -> bool:
    """`bench_pretix`, owned by bmt (which has CREATEDB); True if it was just created."""
    conn = await asyncpg.connect(dsn(settings, "postgres"))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            return False
        await conn.execute(f"CREATE DATABASE \"{DATABASE}\" ENCODING 'UTF8' TEMPLATE template0")
        return True
    finally:
        await conn.close()


def write_config(pretix: Pretix) -> None:
    settings = pretix.settings
    (pretix.state / "data").mkdir(parents=True, exist_ok=True)
    text = f"""; written by bench/bmt_bench/pretix.py; every run rewrites it
[pretix]
instance_name=BMT bench peer
url={URL}
currency=VND
datadir={pretix.state / "data"}
registration=off
; no internet: do not fetch exchange rates
ecb_rates=off

[locale]
default=en
timezone=Asia/Ho_Chi_Minh

[django]
debug=off

[database]
backend=postgresql
name={DATABASE}
user=bmt
password={settings.postgres_password.get_secret_value()}
host={HOST}
port={settings.port_postgres}

[mail]
; nothing is meant to be sent; if something tries, it meets a closed port
from=pretix@localhost
host={HOST}
port=9
"""
    pretix.config.write_text(text)
    pretix.config.chmod(0o600)


async def prepare(settings: StackSettings, seats: int) -> tuple[Pretix, dict[str, Any]]:
    """Install (cached), database, config, migrations (once per version), the event's data."""
    started = time.monotonic()
    venv = await asyncio.to_thread(install, settings)
    pretix = Pretix(settings, venv)
    pretix.state.mkdir(parents=True, exist_ok=True)
    write_config(pretix)
    marker = pretix.state / "migrated"
    if await ensure_database(settings) or not marker.exists() or marker.read_text() != VERSION:
        with step(f"pretix {VERSION}: migrate the {DATABASE} database (first run only)"):
            await asyncio.to_thread(pretix.run, pretix.python, "-m", "pretix", "migrate")
        marker.write_text(VERSION)
    with step(f"pretix: organizer, event, product, a {seats}-seat plan, an API token"):
        data = await asyncio.to_thread(pretix.script, "setup", seats)
    data["prepare_seconds"] = round(time.monotonic() - started, 1)
    return pretix, data


class Server:
    """gunicorn serving pretix.wsgi the way pretix's deployment guide does, on 127.0.0.1."""

    def __init__(self, pretix: Pretix) -> None:
        self.log = pretix.state / "gunicorn.log"
        self.output = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                str(pretix.venv / "bin" / "gunicorn"),
                "pretix.wsgi",
                "--name",
                "pretix",
                "--workers",
                str(WORKERS),
                "--max-requests",
                "1200",
                "--max-requests-jitter",
                "50",
                "--log-level=info",
                f"--bind={HOST}:{PORT}",
                # gunicorn 23+ would also open a control socket in ~/.gunicorn; not needed here
                "--no-control-socket",
            ],
            cwd=pretix.state,
            env=pretix.env(),
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, data: dict[str, Any]) -> None:
        """Until the API answers: 5 workers booting Django at once on 2 cores take a while."""
        url = f"{URL}/api/v1/organizers/{data['organizer']}/events/{data['event']}/"
        headers = {"Authorization": f"Token {data['token']}"}
        deadline = time.monotonic() + 120
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    async with http.get(url, headers=headers) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.3)
        tail = self.log.read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError("pretix did not start:\n" + "\n".join(tail))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.output.close()


async def drained(settings: StackSettings, event_id: int, quiet: float = 2.0) -> None:
    """Wait until the orders wrk left in flight have landed: nothing new for `quiet` seconds.

    wrk stops counting at the end of its run, but gunicorn still answers the requests it had
    already accepted (up to one per connection); the checks and the reset come after those.
    """
    conn = await asyncpg.connect(dsn(settings, DATABASE))
    try:
        last, still_since = None, time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = await conn.fetchval(
                "SELECT (count(*), coalesce(max(id), 0))::text FROM pretixbase_order"
                " WHERE event_id = $1",
                event_id,
            )
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def invariants(settings: StackSettings, event_id: int, seats: int) -> dict[str, Any]:
    """After a storm: no seat in two live order positions; every seat still there."""
    live = (
        "FROM pretixbase_orderposition op JOIN pretixbase_order o ON o.id = op.order_id"
        " WHERE o.event_id = $1 AND o.status IN ('n', 'p') AND NOT op.canceled"
    )
    conn = await asyncpg.connect(dsn(settings, DATABASE))
    try:
        doubled = await conn.fetchval(
            f"SELECT count(*) FROM (SELECT op.seat_id {live} AND op.seat_id IS NOT NULL"  # noqa: S608
            " GROUP BY op.seat_id HAVING count(*) > 1) d",
            event_id,
        )
        sold = await conn.fetchval(f"SELECT count(DISTINCT op.seat_id) {live}", event_id)
        without_seat = await conn.fetchval(
            f"SELECT count(*) {live} AND op.seat_id IS NULL",
            event_id,
        )
        orders = await conn.fetchval(
            "SELECT count(*) FROM pretixbase_order WHERE event_id = $1 AND status IN ('n', 'p')",
            event_id,
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM pretixbase_seat WHERE event_id = $1 AND subevent_id IS NULL",
            event_id,
        )
    finally:
        await conn.close()
    return {
        "seats_in_two_orders": doubled,
        "seats_sold": sold,
        "positions_without_seat": without_seat,
        "live_orders": orders,
        "seats_accounted": total,
        "ok": doubled == 0 and without_seat == 0 and total == seats,
    }


async def storm(
    settings: StackSettings, connections: tuple[int, ...], seconds: float, seats: int = 2000
) -> tuple[list[Load], dict[str, Any]]:
    """Orders of 1-4 random seats through pretix's REST API, for each connection count.

    Returns the loads and, per load name, the SQL checks made after it; the key "pretix" holds
    the version, the gunicorn workers and the set-up time.
    """
    pretix, data = await prepare(settings, seats)
    checks: dict[str, Any] = {
        "pretix": {
            "version": VERSION,
            "gunicorn_workers": WORKERS,
            "prepare_seconds": data["prepare_seconds"],
        }
    }
    loads: list[Load] = []
    server = Server(pretix)
    try:
        await server.ready(data)
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "seats").write_text("\n".join(data["seats"]) + "\n")
            env = {
                "BMT_BENCH_SEATS": f"{folder}/seats",
                "BMT_BENCH_TOKEN": data["token"],
                "BMT_BENCH_ITEM": str(data["item"]),
                "BMT_BENCH_PATH": (
                    f"/api/v1/organizers/{data['organizer']}/events/{data['event']}/orders/"
                ),
            }
            # Warm-up, not measured: each gunicorn worker's first order costs ~1.3 s (imports,
            # plugin registries); BMT's services are long-running and warm, so pretix's are too.
            await asyncio.to_thread(
                wrk, "pretix warm-up", URL, "pretix_orders.lua", max(connections), 2.0, env
            )
            await drained(settings, data["event_id"])
            for c in connections:
                await asyncio.to_thread(pretix.script, "reset", seats)
                load = await asyncio.to_thread(
                    wrk,
                    f"orders via pretix {VERSION} REST API, {c} conn",
                    URL,
                    "pretix_orders.lua",
                    c,
                    seconds,
                    env,
                )
                loads.append(load)
                await drained(settings, data["event_id"])
                checks[load.name] = await invariants(settings, data["event_id"], seats)
    finally:
        server.stop()
        await asyncio.to_thread(pretix.script, "reset", seats)
    return loads, checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bmt_bench.pretix")
    parser.add_argument("--seconds", type=float, default=15.0, help="per load run")
    parser.add_argument("--connections", default="16,64", help="comma-separated, e.g. 16,64")
    parser.add_argument("--seats", type=int, default=2000)
    args = parser.parse_args(argv)
    connections = tuple(int(c) for c in args.connections.split(","))
    loads, checks = asyncio.run(storm(StackSettings(), connections, args.seconds, args.seats))
    box = machine()
    print(f"Machine: {box['cores']} cores, {box['memory_gib']} GiB, {box['cpu']}\n")
    print("| load | conn | req/s | 201/s | 400/s | other | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for load in loads:
        p = load.latency_ms
        other = load.errors + sum(n for s, n in load.statuses.items() if s not in ("201", "400"))
        print(
            f"| {load.name} | {load.connections} | {load.per_second():.1f} | "
            f"{load.per_second('201'):.1f} | {load.per_second('400'):.1f} | {other} | "
            f"{p.get('50', 0):.1f} | {p.get('95', 0):.1f} | {load.p99:.1f} |"
        )
    print()
    print(json.dumps({"statuses": {x.name: x.statuses for x in loads}, **checks}, indent=2))
    say(f"pretix's log: {StackSettings().state_dir / 'bench' / 'pretix'}")
    return 0 if all(v.get("ok", True) for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
