"""Faults under load: while every kind of client books, pays, signs in, registers, uploads and
applies resources, one component is killed with SIGKILL (its whole process group, as a crash
takes it) and restarted by `bmt up`, as a supervisor would. Afterwards the services' databases
must show that nothing acknowledged was lost and nothing happened twice.

`make test` runs the short matrix; `BMT_CHAOS_FAULTS=all` (or a comma-separated list of
component names) runs others, see tests/chaos/README.md.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import pytest
from chaos import checks
from chaos.load import Shop, Tally

from bmt_stack import cli
from bmt_stack.components import all_components
from bmt_stack.components.base import Component
from bmt_stack.components.services import service_components
from bmt_stack.config import HOST, StackSettings
from crs import cinema, film
from kube import Kube
from support import Client, eventually, released_showtime, seat_map

SHORT = ("kafka", "postgres", "order", "operator")
ALL = (
    "kafka",
    "connect",
    "postgres",
    "moto",
    "user",
    "mail",
    "product",
    "upload",
    "showtime",
    "order",
    "payment",
    "sandbox",
    "gateway",
    "operator",
)
_chosen = os.environ.get("BMT_CHAOS_FAULTS", "")
FAULTS = ALL if _chosen == "all" else tuple(f for f in _chosen.split(",") if f) or SHORT
HALL = {
    "name": "Chaos",
    "rows": [{"label": label, "seats": 50, "price": 90_000} for label in "ABCDEFGHIJKLMNOPQRST"],
}


@dataclass
class Row:
    fault: str
    requests: int  # from the kill until the component answered healthy again
    errors: int  # the same window and the recovery after it
    restart: float  # kill -> healthy
    recovery: float  # kill -> every kind of client succeeding again
    settled: float  # kill -> every invariant holding
    held: str


@pytest.fixture(scope="module")
def table(figure: Callable[[str], None]) -> Iterator[list[Row]]:
    rows: list[Row] = []
    yield rows
    if rows:
        lines = [
            f"{'fault':10} {'requests':>8} {'errors':>6} {'restart':>8} {'recovery':>9}"
            f" {'settled':>8}  invariants"
        ] + [
            f"{r.fault:10} {r.requests:>8} {r.errors:>6} {r.restart:>7.1f}s {r.recovery:>8.1f}s"
            f" {r.settled:>7.1f}s  {r.held}"
            for r in rows
        ]
        figure("\n[faults] one component killed with SIGKILL under load\n" + "\n".join(lines))


@pytest.fixture
async def shop(
    admin: Client,
    new_client: Callable[[], Client],
    make_user: Callable[..., Awaitable[Client]],
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    unique: str,
) -> AsyncIterator[Shop]:
    # Each case starts from a healthy platform, whatever the case before it left.
    assert await asyncio.to_thread(cli.platform_up, bmt_platform) == 0
    showtime = await released_showtime(admin, unique, hall=HALL)
    seats: asyncio.Queue[int] = asyncio.Queue()
    for seat in (await seat_map(admin, showtime["id"]))["seats"]:
        seats.put_nowait(seat["seat_id"])
    login = {"email": f"login-{unique}@example.com", "password": "a long enough password"}
    status, body = await admin.call(
        "POST", "/v1/users", json={**login, "name": "Chaos", "role": "customer"}
    )
    assert status == 201, body
    kube, namespace = Kube(bmt_platform), f"chaos-{unique}"
    await asyncio.to_thread(kube.run, "create", "namespace", namespace)
    await asyncio.to_thread(
        kube.apply, cinema("chaos-cinema", namespace), film("chaos-film", namespace)
    )
    await kube.condition("cinema", "chaos-cinema", namespace)
    await kube.condition("film", "chaos-film", namespace)
    yield Shop(
        customers=[await make_user() for _ in range(3)],
        admin=admin,
        new_client=new_client,
        login=login,
        http=http,
        sandbox=f"http://{HOST}:{bmt_platform.port_sandbox}",
        showtime_id=showtime["id"],
        seats=seats,
        kube=kube,
        namespace=namespace,
    )
    await asyncio.to_thread(kube.run, "delete", "namespace", namespace, "--wait=false")


def component(settings: StackSettings, name: str) -> Component:
    return next(
        c for c in all_components(settings) + service_components(settings) if c.name == name
    )


@pytest.mark.parametrize("fault", FAULTS)
async def test_a_killed_component_loses_nothing(
    fault: str,
    shop: Shop,
    bmt_platform: StackSettings,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    table: list[Row],
) -> None:
    marks = await checks.outbox_marks(db)
    victim, tally = component(bmt_platform, fault), shop.tally
    load = [asyncio.create_task(journey) for journey in shop.journeys()]
    try:
        await eventually(lambda: _steady(tally), 60, "every kind of client succeeding")
        requests, errors = tally.requests, tally.errors
        pid = victim.pid()
        assert pid is not None, f"{fault} is not running"
        killed = time.monotonic()
        os.killpg(pid, signal.SIGKILL)
        # A supervisor restarts what it has seen die; seeing it takes a moment.
        await eventually(lambda: _gone(victim), 30, f"{fault} dead")
        assert await asyncio.to_thread(cli.platform_up, bmt_platform) == 0
        restart = time.monotonic() - killed
        requests = tally.requests - requests
        recovered = await eventually(
            lambda: _recovered(tally, killed), 120, "every kind of client succeeding again"
        )
        errors = tally.errors - errors
    finally:
        shop.stop.set()
        await asyncio.gather(*load)

    problems: list[str] = []

    async def settled() -> float | None:
        problems[:] = [
            *await checks.orders_kept(db, shop),
            *await checks.paid_orders_ticketed(db, shop),
            *await checks.events_applied_once(db, marks),
            *await checks.codes_mailed_once(db, shop),
            # moto keeps everything in memory: objects stored before its crash die with it.
            *await checks.media_stored(shop, since=killed if fault == "moto" else None),
            *await checks.resources_ready(shop),
        ]
        return None if problems else time.monotonic()

    try:
        settled_at = await eventually(settled, 180, "every invariant holding")
        await checks.expire_holds(db, shop)

        async def freed() -> bool | None:
            problems[:] = await checks.holds_freed(db, shop) + await checks.seats_sold_once(
                db, shop
            )
            return None if problems else True

        await eventually(freed, 30, "unpaid holds expired and their seats free")
    except AssertionError:
        held = "BROKEN: " + "; ".join(problems)
        settled_at = time.monotonic()
    else:
        held = "all held"
    table.append(
        Row(
            fault,
            requests,
            errors,
            restart,
            recovered - killed,
            settled_at - killed,
            f"{held} ({len(tally.acknowledged)} orders, {len(tally.paid)} paid,"
            f" {len(tally.emails)} codes, {len(tally.films)} uploads,"
            f" {len(tally.showtimes)} showtimes)",
        )
    )
    assert held == "all held", f"{held}; last client errors: {tally.last_errors}"


async def _steady(tally: Tally) -> bool | None:
    kinds = {"book", "pay", "browse", "login", "register", "upload", "operator"}
    return True if kinds <= {k for k, runs in tally.successes.items() if runs} else None


async def _gone(victim: Component) -> bool | None:
    return True if victim.pid() is None else None


async def _recovered(tally: Tally, since: float) -> float | None:
    return tally.recovered(since)
