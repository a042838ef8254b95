"""The authorization matrix: every route of every service (read from the gateway's route
documents), called by anonymous, a customer (the owner of the scene), another customer, staff
and an admin, through the gateway and straight to the service.

- A route that needs a role refuses callers without it: 401 anonymous, 403 a wrong role, as
  problem+json; the refused request is the real, valid one (so a refusal is not a 422 in disguise).
- Callers with the role pass (never 401/403, never 5xx); they send a harmless variant (an empty
  body, an id that does not exist) so that the matrix itself changes nothing.
- Another customer and staff read the owner's order, tickets, QR codes and payment as 404, and
  cannot cancel or pay the owner's order.
- Nothing changed: the scene's rows in all five databases are the same before and after.

The number of (route, caller, path) cases is printed (run with -s) and recorded as the
`authorization_cases` property (in the junit XML with --junitxml)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import pytest
from security.scene import (
    PASSWORD,
    SERVICES,
    Answer,
    Scene,
    call,
    login,
    service_url,
)

from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import StackSettings
from support import Client

CALLERS = ("anonymous", "customer", "other", "staff", "admin")
MISSING = "999999999"


@dataclass
class Case:
    """How one route is called: the real request (sent by callers who must be refused) and
    a harmless one (sent by callers who may pass). `owned`: another customer or staff sending
    the real request must get 404."""

    path: str
    real: dict[str, Any] = field(default_factory=dict)
    safe_path: str | None = None
    safe: dict[str, Any] | None = None
    owned: bool = False
    generic: bool = False


def form(**fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value)
    return data


def cases(s: Scene) -> dict[tuple[str, str], Case]:
    u = s.unique
    starts = "2031-01-01T10:00:00+00:00"
    film = {"title": f"Hacked {u}", "release_date": "2026-12-01", "duration_minutes": 90}
    film |= {"age_rating": "T13"}
    cinema = {"name": f"Hacked {u}", "city": "X", "address": "Y", "halls": []}
    return {
        ("POST", "/v1/auth/logout"): Case("/v1/auth/logout"),
        ("GET", "/v1/users/me"): Case("/v1/users/me"),
        ("PATCH", "/v1/users/me"): Case(
            "/v1/users/me", {"json": {"name": f"Hacked {u}"}}, safe={"json": {}}
        ),
        ("POST", "/v1/users"): Case(
            "/v1/users",
            {
                "json": {
                    "email": f"mallory-{u}@example.com",
                    "password": PASSWORD,
                    "name": "Mallory",
                    "role": "admin",
                }
            },
            safe={"json": {}},
        ),
        ("POST", "/v1/films"): Case(
            "/v1/films",
            {"data": lambda: form(**{k: str(v) for k, v in film.items()})},
            safe={"json": {}},
        ),
        ("PATCH", "/v1/films/{id}"): Case(
            f"/v1/films/{s.film_id}",
            {"data": lambda: form(title=f"Hacked {u}")},
            safe_path=f"/v1/films/{MISSING}",
            safe={"data": lambda: form(title="x")},
        ),
        ("GET", "/v1/films/{id}"): Case(f"/v1/films/{s.film_id}"),
        ("PUT", "/v1/films/by-key/{key}"): Case(
            f"/v1/films/by-key/{s.film_key}", {"json": film}, safe={"json": {}}
        ),
        ("GET", "/v1/films/by-key/{key}"): Case(f"/v1/films/by-key/{s.film_key}"),
        ("DELETE", "/v1/films/by-key/{key}"): Case(
            f"/v1/films/by-key/{s.film_key}", safe_path=f"/v1/films/by-key/missing-{u}"
        ),
        ("POST", "/v1/fabs"): Case(
            "/v1/fabs",
            {"data": lambda: form(name=f"Hacked {u}", kind="food", price="1")},
            safe={"json": {}},
        ),
        ("PATCH", "/v1/fabs/{id}"): Case(
            f"/v1/fabs/{s.fab_id}",
            {"data": lambda: form(price="1")},
            safe_path=f"/v1/fabs/{MISSING}",
            safe={"data": lambda: form(price="1")},
        ),
        ("DELETE", "/v1/fabs/{id}"): Case(f"/v1/fabs/{s.fab_id}", safe_path=f"/v1/fabs/{MISSING}"),
        ("GET", "/v1/fabs/{id}"): Case(f"/v1/fabs/{s.fab_id}"),
        ("POST", "/v1/cinemas"): Case("/v1/cinemas", {"json": cinema}, safe={"json": {}}),
        ("PUT", "/v1/cinemas/by-key/{key}"): Case(
            f"/v1/cinemas/by-key/{s.cinema_key}", {"json": cinema}, safe={"json": {}}
        ),
        ("DELETE", "/v1/cinemas/by-key/{key}"): Case(
            f"/v1/cinemas/by-key/{s.cinema_key}", safe_path=f"/v1/cinemas/by-key/missing-{u}"
        ),
        ("GET", "/v1/cinemas/by-key/{key}"): Case(f"/v1/cinemas/by-key/{s.cinema_key}"),
        ("GET", "/v1/cinemas/{id}"): Case(f"/v1/cinemas/{s.cinema_id}"),
        ("GET", "/v1/films/{id}/cinemas"): Case(f"/v1/films/{s.film_id}/cinemas"),
        ("POST", "/v1/showtimes"): Case(
            "/v1/showtimes",
            {"json": {"film_id": s.film_id, "hall_id": s.hall_id, "starts_at": starts}},
            safe={"json": {}},
        ),
        ("PUT", "/v1/showtimes/by-key/{key}"): Case(
            f"/v1/showtimes/by-key/hacked-{u}",
            {
                "json": {
                    "film_id": s.film_id,
                    "cinema_key": s.cinema_key,
                    "hall": "Hall 1",
                    "starts_at": starts,
                    "released": True,
                }
            },
            safe={"json": {}},
        ),
        ("DELETE", "/v1/showtimes/by-key/{key}"): Case(
            f"/v1/showtimes/by-key/{s.showtime_key}",
            safe_path=f"/v1/showtimes/by-key/missing-{u}",
        ),
        ("POST", "/v1/showtimes/{id}/release"): Case(
            f"/v1/showtimes/{s.unreleased_id}/release",
            safe_path=f"/v1/showtimes/{MISSING}/release",
        ),
        ("GET", "/v1/showtimes/{id}"): Case(f"/v1/showtimes/{s.showtime_id}"),
        ("GET", "/v1/showtimes/{id}/seats"): Case(f"/v1/showtimes/{s.showtime_id}/seats"),
        ("POST", "/v1/orders"): Case(
            "/v1/orders",
            {"json": {"showtime_id": s.showtime_id, "seats": [s.free_seat]}},
            safe={"json": {}},
        ),
        ("GET", "/v1/orders"): Case("/v1/orders"),
        ("GET", "/v1/orders/{id}"): Case(f"/v1/orders/{s.paid_order['id']}", owned=True),
        ("POST", "/v1/orders/{id}/cancel"): Case(
            # The paid order: its owner and an admin get 409 (only pending orders cancel).
            f"/v1/orders/{s.paid_order['id']}/cancel",
            owned=True,
        ),
        ("GET", "/v1/orders/{id}/tickets"): Case(
            f"/v1/orders/{s.paid_order['id']}/tickets", owned=True
        ),
        ("GET", "/v1/tickets/{id}/qr.png"): Case(
            f"/v1/tickets/{s.tickets[0]['id']}/qr.png", owned=True
        ),
        ("POST", "/v1/tickets/check-in"): Case(
            "/v1/tickets/check-in", {"json": {"code": s.tickets[0]["code"]}}, safe={"json": {}}
        ),
        ("POST", "/v1/payments"): Case(
            "/v1/payments",
            {"json": {"order_id": s.pending_order["id"], "provider": "vnpay"}},
            safe={"json": {}},
            owned=True,
        ),
        ("GET", "/v1/payments/{id}"): Case(f"/v1/payments/{s.payment['payment_id']}", owned=True),
    }


def generic(template: str) -> Case:
    """A route the table does not know yet: it is still covered, by its auth rule."""
    return Case(re.sub(r"\{\w+\}", MISSING, template), safe={"json": {}}, generic=True)


def allowed(auth: str | None, caller: str) -> bool:
    if auth is None:
        return True
    if caller == "anonymous":
        return False
    role = {"customer": "customer", "other": "customer", "staff": "staff", "admin": "admin"}
    return auth == "user" or role[caller] in (auth, "admin")


def materialize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Form bodies are built anew for each request (aiohttp consumes them)."""
    return {k: (v() if callable(v) else v) for k, v in kwargs.items()}


FINGERPRINT = {
    "bmt_user": [
        "SELECT email, role, name, birthday, sex, password_hash FROM users"
        " WHERE email LIKE '%' || $1 || '%' ORDER BY email",
    ],
    "bmt_product": [
        "SELECT id, title, description, release_date, duration_minutes, genres, age_rating,"
        " external_key FROM films WHERE title LIKE '%' || $1 || '%'"
        " OR external_key LIKE '%' || $1 ORDER BY id",
        "SELECT id, name, kind, price, is_deleted FROM fabs WHERE name LIKE '%' || $1 || '%'"
        " ORDER BY id",
    ],
    "bmt_showtime": [
        "SELECT id, name, city, address, external_key FROM cinemas"
        " WHERE name LIKE '%' || $1 || '%' OR external_key LIKE '%' || $1 ORDER BY id",
        "SELECT s.id, s.film_id, s.hall_id, s.starts_at, s.released_at, s.external_key"
        " FROM showtimes s JOIN halls h ON h.id = s.hall_id JOIN cinemas c ON c.id = h.cinema_id"
        " WHERE c.name LIKE '%' || $1 || '%' OR s.external_key LIKE '%' || $1 ORDER BY s.id",
    ],
    "bmt_order": [
        "SELECT o.id, o.status, o.total, o.payment_id FROM orders o"
        " JOIN showtimes s ON s.id = o.showtime_id WHERE s.cinema_name LIKE '%' || $1 || '%'"
        " ORDER BY o.id",
        "SELECT t.id, t.order_id, t.code, t.checked_in_at FROM tickets t JOIN orders o"
        " ON o.id = t.order_id JOIN showtimes s ON s.id = o.showtime_id"
        " WHERE s.cinema_name LIKE '%' || $1 || '%' ORDER BY t.id",
        "SELECT seat_id, status, order_id FROM seats WHERE showtime_id IN"
        " (SELECT id FROM showtimes WHERE cinema_name LIKE '%' || $1 || '%')"
        " ORDER BY seat_id",
    ],
    "bmt_payment": [
        "SELECT p.id, p.order_id, p.status, p.amount FROM payments p"
        " WHERE $1::text IS NULL AND p.user_id = ANY($2::bigint[]) ORDER BY p.id",
    ],
}


async def fingerprint(
    db: Callable[[str], Awaitable[asyncpg.Connection]], scene: Scene
) -> dict[str, list[str]]:
    users = [scene.owner.user_id, scene.other.user_id, scene.staff.user_id]
    found: dict[str, list[str]] = {}
    for database, queries in FINGERPRINT.items():
        conn = await db(database)
        try:
            for sql in queries:
                args: list[Any] = [None if "$2" in sql else scene.unique]
                args += [users] if "$2" in sql else []
                rows = await conn.fetch(sql, *args)
                found[sql] = [json.dumps(dict(r), default=str, sort_keys=True) for r in rows]
        finally:
            await conn.close()
    return found


def expectation(case: Case, auth: str | None, caller: str) -> tuple[str, str]:
    """(which request to send: real or safe, what must come back)."""
    if not allowed(auth, caller):
        return "real", "401" if caller == "anonymous" else "403"
    if case.owned and caller in ("other", "staff"):
        return "real", "404"
    if case.owned and caller in ("customer", "admin"):
        return ("safe" if case.safe is not None else "real"), "passes"
    return ("safe" if (auth is not None and (case.safe or case.safe_path)) else "real"), "passes"


@pytest.mark.parametrize("route_path", ["gateway", "direct"])
async def test_every_route_refuses_callers_without_the_role(
    route_path: str,
    scene: Scene,
    admin: Client,
    http: aiohttp.ClientSession,
    gateway: str,
    bmt_platform: StackSettings,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    record_property: Callable[[str, object], None],
    figure: Callable[[str], None],
) -> None:
    assert admin.token is not None
    tokens: dict[str, str | None] = {
        "anonymous": None,
        "customer": scene.owner.token,
        "other": scene.other.token,
        "staff": scene.staff.token,
        "admin": admin.token,
    }
    accounts = {"customer": scene.owner, "other": scene.other, "staff": scene.staff}
    table = cases(scene)
    before = await fingerprint(db, scene)
    assert all(before.values()), f"the fingerprint misses the scene: {before}"
    failures: list[str] = []
    generic_routes: list[str] = []
    count = 0
    for service in SERVICES:
        document = await call(http, gateway, "GET", f"/docs/openapi/{service}.json")
        assert document.status == 200, document
        base = gateway if route_path == "gateway" else service_url(bmt_platform, service)
        # logout last: an allowed caller's logout ends a session of its own (a fresh one).
        operations = sorted(
            (
                (method.upper(), template, op.get("x-bmt-auth"))
                for template, ops in document.body["paths"].items()
                for method, op in ops.items()
            ),
            key=lambda o: o[1] == "/v1/auth/logout",
        )
        for method, template, auth in operations:
            case = table.get((method, template)) or generic(template)
            if case.generic and auth is not None:
                generic_routes.append(f"{method} {template}")
            for caller in CALLERS:
                send, wanted = expectation(case, auth, caller)
                token = tokens[caller]
                if template == "/v1/auth/logout" and wanted == "passes":
                    account = accounts.get(caller)
                    email, password = (
                        (account.email, account.password)
                        if account
                        else (ADMIN_EMAIL, Secrets(bmt_platform).admin_password())
                    )
                    token = await login(http, service_url(bmt_platform, "user"), email, password)
                path = (case.safe_path or case.path) if send == "safe" else case.path
                kwargs = materialize((case.safe or {}) if send == "safe" else case.real)
                if wanted == "passes" and case.owned and method == "GET":
                    wanted = "200"  # the owner and an admin read it
                answer = await call(http, base, method, path, token=token, **kwargs)
                count += 1
                where = f"{route_path} {method} {path} as {caller} ({auth=})"
                failures.extend(judge(answer, wanted, where))
                if wanted == "passes" and template == "/v1/orders" and method == "GET":
                    mine = {o["id"] for o in answer.body["items"]}
                    theirs = {scene.paid_order["id"], scene.pending_order["id"]}
                    if caller in ("other", "staff") and mine & theirs:
                        failures.append(f"{where}: lists the owner's orders {mine & theirs}")
                    if caller in ("customer", "admin") and not theirs <= mine:
                        failures.append(f"{where}: misses the owner's orders")
    after = await fingerprint(db, scene)
    changed = {sql: (before[sql], after[sql]) for sql in before if before[sql] != after[sql]}
    figure(
        f"\n[authorization] {route_path}: {count} (route, caller, path) cases, "
        f"{len(failures)} failures, {len(generic_routes)} routes with a generic case"
        + (f": {generic_routes}" if generic_routes else "")
    )
    record_property("authorization_cases", count)
    assert not failures, "\n".join(failures)
    assert not changed, f"refused or harmless calls changed the state: {changed}"
    assert count >= 5 * 40, count


def judge(answer: Answer, wanted: str, where: str) -> list[str]:
    if wanted == "passes":
        if answer.status in (401, 403) or answer.status >= 500:
            return [f"{where}: {answer.status} {answer.body!r:.300}"]
        return []
    if wanted == "200":
        return [] if answer.status == 200 else [f"{where}: {answer.status} {answer.body!r:.300}"]
    if str(answer.status) != wanted:
        return [f"{where}: wanted {wanted}, got {answer.status} {answer.body!r:.300}"]
    if not answer.is_problem():
        return [f"{where}: {answer.status} is not problem+json: {answer.content_type}"]
    return []
