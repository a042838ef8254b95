"""The gateway's routing table and rate limiter."""

from __future__ import annotations

import time

from bmt_gateway.ratelimit import RateLimiter
from bmt_gateway.revocations import RevokedSessions
from bmt_gateway.routes import Table


def document(paths: dict[str, list[str]], auth: str | None = None) -> dict[str, object]:
    return {
        "paths": {
            path: {m: ({"x-bmt-auth": auth} if auth else {}) for m in methods}
            for path, methods in paths.items()
        }
    }


def test_routes_match_by_method_and_template() -> None:
    table = Table()
    table.update("product", document({"/v1/films": ["get", "post"], "/v1/films/{id}": ["get"]}))
    table.update("user", document({"/v1/users/me": ["get"]}, auth="user"))
    route, _ = table.match("GET", "/v1/films/12")
    assert route is not None
    assert (route.service, route.template) == ("product", "/v1/films/{id}")
    route, _ = table.match("GET", "/v1/users/me")
    assert route is not None
    assert route.auth == "user"
    assert table.match("GET", "/v1/films/12/extra") == (None, [])
    assert table.match("DELETE", "/v1/films") == (None, ["GET", "POST"])


def test_literal_paths_win_over_templates() -> None:
    table = Table()
    table.update("a", document({"/v1/x/{id}": ["get"], "/v1/x/latest": ["get"]}))
    route, _ = table.match("GET", "/v1/x/latest")
    assert route is not None
    assert route.template == "/v1/x/latest"


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(per_second=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == 0.5  # one token comes every half second
    assert limiter.take("b") == 0  # another client has its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0


def test_ended_sessions_are_kept_while_their_tokens_can_live() -> None:
    revoked = RevokedSessions(keep_seconds=600)
    now = time.time()
    revoked.add("recent", now - 10)
    revoked.add("long-ago", now - 601)  # every token of it has expired: it may be forgotten
    assert "recent" in revoked
    assert "long-ago" not in revoked
    assert "never-ended" not in revoked
