"""`python -m bmt_bench [--smoke]`: the benchmark suite against the running local platform.

Prints a Markdown table, writes bench/results/<stamp>.json and .png (latency percentiles).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

import aiohttp

from bmt_bench import events, holds, operator_load, pretix
from bmt_bench.common import Report, machine
from bmt_bench.platform import Platform
from bmt_stack.config import PROJECT_ROOT, StackSettings

RESULTS = PROJECT_ROOT / "bench" / "results"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.0%}" if b else "-"


def table(report: Report) -> str:
    out = [
        f"Machine: {report.machine['cores']} cores, {report.machine['memory_gib']} GiB, "
        f"{report.machine['cpu']}; {report.figures['date']}",
        "",
        "| load | conn | req/s | ok/s | 409/s | errors | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for load in report.loads:
        ok = load.per_second("201", "200", "committed")
        errors = load.errors + sum(n for s, n in load.statuses.items() if s.startswith("5"))
        p = load.latency_ms
        out.append(
            f"| {load.name} | {load.connections} | {load.per_second():.0f} | {ok:.0f} | "
            f"{load.per_second('409'):.0f} | {errors} | "
            f"{p.get('50', 0):.1f} | {p.get('95', 0):.1f} | {load.p99:.1f} |"
        )
    out.append("")
    for name, value in report.figures.items():
        if name != "date":
            out.append(f"- {name}: {json.dumps(value) if not isinstance(value, str) else value}")
    return "\n".join(out)


def compare(report: Report) -> None:
    by_name = {load.name: load for load in report.loads}
    for c in report.figures.get("connections", []):
        direct = by_name.get(f"holds via order service, {c} conn")
        gateway = by_name.get(f"holds via gateway, {c} conn")
        bare = by_name.get(f"holds via bare aiohttp+asyncpg, {c} conn")
        pg = by_name.get(f"pgbench hold transaction, {c} clients")
        if direct and gateway and bare and pg:
            report.figures[f"holds {c} conn: BMT direct / bare"] = ratio(
                direct.per_second(), bare.per_second()
            )
            report.figures[f"holds {c} conn: BMT gateway / bare"] = ratio(
                gateway.per_second(), bare.per_second()
            )
            report.figures[f"holds {c} conn: BMT direct / pgbench"] = ratio(
                direct.per_second(), pg.per_second()
            )
        peer = next(
            (load for load in report.loads if "pretix" in load.name and load.connections == c),
            None,
        )
        if direct and peer and peer.per_second("201"):
            report.figures[f"orders {c} conn: BMT / pretix, per second"] = (
                f"{direct.per_second('201', '409') / peer.per_second('201', '400'):.0f}x requests,"
                f" {direct.per_second('201') / peer.per_second('201'):.0f}x orders"
            )
            report.figures[f"orders {c} conn: pretix p99 / BMT p99"] = (
                f"{peer.p99 / direct.p99:.0f}x"
            )
    reads = [load for load in report.loads if load.name.startswith("seat map")]
    if len(reads) == 3:
        report.figures["seat map: BMT direct / bare"] = ratio(
            reads[0].per_second(), reads[2].per_second()
        )
        report.figures["seat map: BMT gateway / bare"] = ratio(
            reads[1].per_second(), reads[2].per_second()
        )


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 6))
    for load in report.loads:
        points = sorted((float(p), ms) for p, ms in load.latency_ms.items())
        axis.plot([p for p, _ in points], [ms for _, ms in points], marker="o", label=load.name)
    axis.set_xlabel("percentile")
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    axis.set_title(
        f"BMT latency percentiles ({report.machine['cores']} cores, {report.figures['date']})"
    )
    axis.legend(fontsize=7)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


async def run(args: argparse.Namespace) -> Report:
    settings = StackSettings()
    report = Report(machine=machine())
    report.figures["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    connections = (16,) if args.smoke else (16, 64)
    report.figures["connections"] = list(connections)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        platform = Platform(settings, http)
        await platform.as_admin()
        if "holds" in args.only:
            loads, checks = await holds.storm(
                platform, args.seats, connections, args.seconds, args.customers
            )
            report.loads += loads
            report.figures["hold invariants (after each storm)"] = checks
        if "seatmap" in args.only:
            report.loads += await holds.seat_map_reads(platform, 500, 16, args.seconds)
        if "events" in args.only:
            report.figures["OTP request -> mail sent"] = await events.otp_to_mail(
                platform, args.iterations
            )
            report.figures["media upload -> URLs stored"] = await events.upload_to_url(
                platform, args.iterations
            )
            report.figures["IPN -> tickets issued"] = await events.ipn_to_tickets(
                platform, args.iterations
            )
    if "pretix" in args.only:
        loads, checks = await pretix.storm(settings, connections, args.seconds, args.seats)
        report.loads += loads
        report.figures["pretix (peer) checks"] = checks
    if "operator" in args.only:
        report.figures["operator idle CPU % (examples only)"] = await operator_load.idle_cpu(
            settings, 5 if args.smoke else 10
        )
        for count in (20,) if args.smoke else (200, 1000):
            result = await operator_load.apply_to_ready(settings, count)
            report.figures[f"operator: apply {count} showtimes -> all Ready"] = result
            report.figures[
                f"operator idle CPU % (with {count} more showtimes)"
            ] = await operator_load.idle_cpu(settings, 5 if args.smoke else 10)
            operator_load.cleanup(settings, result["namespace"])
    compare(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bmt_bench")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves it works")
    parser.add_argument("--seconds", type=float, default=15.0, help="per load run")
    parser.add_argument("--seats", type=int, default=2000, help="seats of the storm's showtime")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--iterations", type=int, default=100, help="per event-latency path")
    parser.add_argument("--only", default="holds,seatmap,events,operator,pretix")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.seats, args.customers, args.iterations = 1.0, 200, 4, 3
        args.only = args.only.replace(",pretix", "")  # a peer's install is no smoke test
    args.only = set(args.only.split(","))
    report = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = "smoke" if args.smoke else dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M")
    (RESULTS / f"{stamp}.json").write_text(report.to_json())
    plot(report, RESULTS / f"{stamp}.png")
    print(table(report))
    print(f"\nwritten: {RESULTS / f'{stamp}.json'} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
