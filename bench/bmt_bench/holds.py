"""The seat-hold storm and the seat-map reads, beside pgbench and a bare endpoint."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bmt_bench.common import Load, percentile, wrk
from bmt_bench.platform import Platform
from bmt_stack.config import HOST

BARE_PORT = 18190
PGBENCH_HOLD = Path(__file__).parent / "sql" / "hold.sql"


async def reset(platform: Platform, showtime_id: int) -> None:
    """Free every seat of the bench showtime: each run starts from the same empty hall."""
    conn = await platform.database("bmt_order")
    try:
        await conn.execute(
            "UPDATE seats SET status = 'available', order_id = NULL, held_until = NULL"
            " WHERE showtime_id = $1",
            showtime_id,
        )
        await conn.execute(
            "UPDATE orders SET status = 'cancelled', closed_at = now()"
            " WHERE showtime_id = $1 AND status = 'pending'",
            showtime_id,
        )
    finally:
        await conn.close()


async def invariants(platform: Platform, showtime_id: int, seats: int) -> dict[str, int | bool]:
    """After a storm: no seat in two live orders, every seat accounted for."""
    conn = await platform.database("bmt_order")
    try:
        doubled = await conn.fetchval(
            "SELECT count(*) FROM (SELECT os.seat_id FROM order_seats os"
            " JOIN orders o ON o.id = os.order_id WHERE o.showtime_id = $1"
            " AND o.status = 'pending' GROUP BY os.seat_id HAVING count(*) > 1) d",
            showtime_id,
        )
        total = await conn.fetchval(
            "SELECT count(*) FROM seats WHERE showtime_id = $1", showtime_id
        )
        mismatched = await conn.fetchval(
            "SELECT count(*) FROM seats s LEFT JOIN order_seats os ON os.seat_id = s.seat_id"
            " AND os.order_id = s.order_id WHERE s.showtime_id = $1 AND s.status = 'held'"
            " AND os.order_id IS NULL",
            showtime_id,
        )
        held = await conn.fetchval(
            "SELECT count(*) FROM seats WHERE showtime_id = $1 AND status = 'held'", showtime_id
        )
    finally:
        await conn.close()
    return {
        "seats_in_two_orders": doubled,
        "seats_accounted": total,
        "held_without_order_line": mismatched,
        "held": held,
        "ok": doubled == 0 and total == seats and mismatched == 0,
    }


class Bare:
    """The bare endpoint as a process of its own, for the duration of a benchmark."""

    def __init__(self, platform: Platform, pool: int) -> None:
        password = platform.settings.postgres_password.get_secret_value()
        dsn = f"postgresql://bmt:{password}@{HOST}:{platform.settings.port_postgres}/bmt_order"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bmt_bench.bare", str(BARE_PORT), dsn, str(pool)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection(HOST, BARE_PORT)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("the bare endpoint did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def pgbench(
    platform: Platform, showtime_id: int, lo: int, hi: int, clients: int, seconds: float
) -> Load:
    binary = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
    with tempfile.TemporaryDirectory() as folder:
        script = PGBENCH_HOLD
        result = subprocess.run(
            [
                binary,
                "-n",
                "-h",
                HOST,
                "-p",
                str(platform.settings.port_postgres),
                "-U",
                "bmt",
                "-c",
                str(clients),
                "-j",
                str(min(2, clients)),
                "-T",
                str(max(1, round(seconds))),
                "-f",
                str(script),
                "-D",
                f"st={showtime_id}",
                "-D",
                f"lo={lo}",
                "-D",
                f"hi={hi}",
                "-l",
                f"--log-prefix={folder}/tx",
                "bmt_order",
            ],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PGPASSWORD": platform.settings.postgres_password.get_secret_value(),
            },
            check=True,
            cwd=folder,
        )
        latencies = [
            int(line.split()[2]) / 1000
            for log in Path(folder).glob("tx*")
            for line in log.read_text().splitlines()
        ]
    done = len(latencies)
    tps = next(float(x.split()[2]) for x in result.stdout.splitlines() if x.startswith("tps"))
    return Load(
        name=f"pgbench hold transaction, {clients} clients",
        connections=clients,
        seconds=done / tps if tps else seconds,
        requests=done,
        errors=0,
        statuses={"committed": done},
        latency_ms={str(p): percentile(latencies, p) for p in (50, 75, 90, 95, 99, 99.9)},
    )


async def storm(
    platform: Platform, seats: int, connections: tuple[int, ...], seconds: float, customers: int
) -> tuple[list[Load], dict[str, object]]:
    """Holds of 1-4 random seats by many clients: direct, through the gateway, bare, pgbench."""
    showtime_id, seat_ids = await platform.showtime(seats)
    tokens = await platform.customers(customers)
    loads: list[Load] = []
    checks: dict[str, object] = {}
    bare = Bare(platform, pool=20)
    await bare.ready()
    try:
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "tokens").write_text("\n".join(tokens) + "\n")
            (Path(folder) / "seats").write_text("\n".join(map(str, seat_ids)) + "\n")
            env = {
                "BMT_BENCH_TOKENS": f"{folder}/tokens",
                "BMT_BENCH_SEATS": f"{folder}/seats",
                "BMT_BENCH_SHOWTIME": str(showtime_id),
            }
            targets = (
                ("order service", platform.url("order"), "/v1/orders"),
                ("gateway", platform.gateway, "/v1/orders"),
                ("bare aiohttp+asyncpg", f"http://{HOST}:{BARE_PORT}", "/hold"),
            )
            for c in connections:
                for label, base, path in targets:
                    await reset(platform, showtime_id)
                    load = await asyncio.to_thread(
                        wrk,
                        f"holds via {label}, {c} conn",
                        base,
                        "holds.lua",
                        c,
                        seconds,
                        {**env, "BMT_BENCH_PATH": path},
                    )
                    loads.append(load)
                    checks[load.name] = await invariants(platform, showtime_id, seats)
                await reset(platform, showtime_id)
                loads.append(
                    await asyncio.to_thread(
                        pgbench, platform, showtime_id, min(seat_ids), max(seat_ids), c, seconds
                    )
                )
    finally:
        bare.stop()
        await reset(platform, showtime_id)
    return loads, checks


async def seat_map_reads(
    platform: Platform, seats: int, connections: int, seconds: float
) -> list[Load]:
    showtime_id, _ = await platform.showtime(seats)
    bare = Bare(platform, pool=20)
    await bare.ready()
    loads = []
    try:
        for label, base, path in (
            ("order service", platform.url("order"), f"/v1/showtimes/{showtime_id}/seats"),
            ("gateway", platform.gateway, f"/v1/showtimes/{showtime_id}/seats"),
            ("bare aiohttp+asyncpg", f"http://{HOST}:{BARE_PORT}", f"/seatmap/{showtime_id}"),
        ):
            loads.append(
                await asyncio.to_thread(
                    wrk,
                    f"seat map ({seats} seats) via {label}, {connections} conn",
                    base,
                    "get.lua",
                    connections,
                    seconds,
                    {"BMT_BENCH_PATH": path},
                )
            )
    finally:
        bare.stop()
    return loads
