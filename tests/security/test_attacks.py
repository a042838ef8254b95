"""What an attacker tries, end to end on the running platform (what tests/platform already
proves is not repeated: registration-code brute force and resend cap, a per-client login limit,
a forged or changed VNPay IPN, a flipped ticket signature, logout ending refresh).

- password-reset codes: 5 wrong tries (from many addresses) lock the code; resends are capped;
- one address guessing codes or passwords over many e-mails is rate-limited by the gateway;
- reset and login answers are identical for known and unknown e-mails, and login timing does
  not tell them apart (medians of 20 logins each, within 30 %; figures printed);
- forged access tokens (alg none, a key of our own with BMT's key id or an unknown one, HS256
  keyed with the public key) are refused by the gateway and by every service directly; expired
  and wrong-audience tokens need the real key to forge, and tests/unit/test_auth.py covers them;
- a refresh token of a session ended by a password reset, and a made-up one, are refused;
- IPNs: MoMo's with a forged signature or a changed amount, VNPay's with the signed params of
  one's own payment pointed at someone else's, and the merchant's pay URL replayed as an IPN;
- made-up ticket codes (real id and a wrong MAC, another ticket's MAC, garbage) are 422;
- no secret (admin password, OTP pepper, ticket key, the JWT private key, any code mailed
  during this module) appears in any log (the last test of the module).

The number of attacks tried is printed at the end (run with -s)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import aiohttp
import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from security.scene import (
    PASSWORD,
    SERVICES,
    Scene,
    any_address,
    call,
    new_account,
    service_url,
)

from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import StackSettings
from support import Client, Mailbox, eventually

ATTACKS: list[str] = []
CODES_SEEN: set[str] = set()
LOG_OFFSETS: dict[str, int] = {}


def tried(what: str, count: int = 1) -> None:
    ATTACKS.extend([what] * count)


@pytest.fixture(scope="module", autouse=True)
def log_offsets(bmt_platform: StackSettings) -> None:
    """Where each log ends before this module: the mailed codes are looked for after it."""
    for path in Path(bmt_platform.logs).glob("*.log"):
        LOG_OFFSETS[path.name] = path.stat().st_size


async def otp_of(mailbox: Mailbox, email: str, count: int = 1) -> str:
    code = await mailbox.otp(email, count)
    CODES_SEEN.add(code)
    return code


# Codes ------------------------------------------------------------------------------------


async def test_five_wrong_reset_codes_lock_the_code_whatever_the_address(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    gateway: str,
    mailbox: Mailbox,
    unique: str,
) -> None:
    victim = await new_account(http, bmt_platform, admin, "customer", unique)
    sent = await call(http, gateway, "POST", "/v1/auth/password/otp", json={"email": victim.email})
    assert sent.status == 202, sent
    code = await otp_of(mailbox, victim.email)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):  # each guess from another address: the lock is the e-mail's, not the IP's
        answer = await call(
            http,
            gateway,
            "POST",
            "/v1/auth/password/verify",
            json={"email": victim.email, "otp": wrong},
        )
        assert answer.status == 400, answer
        assert answer.is_problem()
    tried("reset-code guess", 5)
    answer = await call(
        http, gateway, "POST", "/v1/auth/password/verify", json={"email": victim.email, "otp": code}
    )
    tried("reset-code after lock")
    assert answer.status == 429, answer
    assert answer.body["detail"] == "Too many wrong codes; request a new code"
    # Resends are capped too: 4 more this hour, then 429.
    statuses = [
        (
            await call(http, gateway, "POST", "/v1/auth/password/otp", json={"email": victim.email})
        ).status
        for _ in range(5)
    ]
    tried("reset-code resend", 5)
    assert statuses == [202] * 4 + [429]
    await otp_of(mailbox, victim.email, 5)  # the mailed codes, for the log check
    for n in range(1, 5):
        CODES_SEEN.add(await mailbox.otp(victim.email, n))


@pytest.mark.parametrize(
    ("path", "body", "answer"),
    [
        ("/v1/auth/password/verify", {"otp": "000000"}, 400),
        ("/v1/auth/register/verify", {"otp": "000000"}, 400),
        ("/v1/auth/login", {"password": "wrong password"}, 401),
    ],
)
async def test_one_address_guessing_over_many_emails_is_rate_limited(
    http: aiohttp.ClientSession,
    gateway: str,
    unique: str,
    path: str,
    body: dict[str, str],
    answer: int,
) -> None:
    address = any_address()
    # At once: sent one by one, twelve slow password checks outlast the bucket's refill (3 s).
    answers = await asyncio.gather(
        *(
            call(
                http,
                gateway,
                "POST",
                path,
                headers={"X-Forwarded-For": address},
                json={"email": f"target-{n}-{unique}@example.com", **body},
            )
            for n in range(12)
        )
    )
    tried(f"guess over many e-mails at {path}", 12)
    assert sorted(a.status for a in answers) == sorted([answer] * 10 + [429, 429])


# Enumeration ------------------------------------------------------------------------------


async def test_reset_and_login_answers_do_not_reveal_an_account(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    gateway: str,
    unique: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    known = (await new_account(http, bmt_platform, admin, "customer", unique)).email
    unknown = f"nobody-{unique}@example.com"

    async def answer(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        got = await call(http, gateway, "POST", path, json=body)
        tried(f"enumerate via {path}")
        return got.status, got.body

    def strip(body: Any) -> Any:
        return (
            {k: v for k, v in body.items() if k != "instance"} if isinstance(body, dict) else body
        )

    for path, body in (
        ("/v1/auth/password/otp", {}),
        ("/v1/auth/password/verify", {"otp": "000000"}),
        ("/v1/auth/login", {"password": "wrong password"}),
        ("/v1/auth/register/otp", {}),
    ):
        k_status, k_body = await answer(path, {"email": known, **body})
        u_status, u_body = await answer(path, {"email": unknown, **body})
        assert (k_status, strip(k_body)) == (u_status, strip(u_body)), path
    # Only the address with an account was sent a reset code.
    conn = await db("bmt_user")
    try:
        mailed = await conn.fetch(
            "SELECT aggregate_id FROM outboxes WHERE event_type = 'otp_requested'"
            " AND payload->>'purpose' = 'password_reset' AND aggregate_id = any($1::text[])",
            [known, unknown],
        )
    finally:
        await conn.close()
    assert [r["aggregate_id"] for r in mailed] == [known]


async def test_login_timing_does_not_reveal_an_account(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    gateway: str,
    unique: str,
    figure: Callable[[str], None],
) -> None:
    known = (await new_account(http, bmt_platform, admin, "customer", unique)).email
    unknown = f"nobody-{unique}@example.com"
    times: dict[str, list[float]] = {"known": [], "unknown": []}

    async def timed(email: str) -> float:
        started = time.perf_counter()
        got = await call(
            http, gateway, "POST", "/v1/auth/login", json={"email": email, "password": "nope-nope"}
        )
        elapsed = time.perf_counter() - started
        assert got.status == 401, got
        return elapsed

    await timed(known), await timed(unknown)  # warm both paths
    for _ in range(20):  # interleaved, so that load drifts hit both alike
        times["known"].append(await timed(known))
        times["unknown"].append(await timed(unknown))
    tried("timed login", 40)
    k, u = statistics.median(times["known"]), statistics.median(times["unknown"])
    difference = abs(k - u) / max(k, u)
    figure(
        f"\n[attacks] login medians over 20 each: known {k * 1000:.1f} ms,"
        f" unknown {u * 1000:.1f} ms, difference {difference:.1%} (limit 30%)"
    )
    assert difference < 0.30, (k, u)


# Tokens -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims() -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    return {
        "sub": "1",
        "email": ADMIN_EMAIL,
        "role": "admin",
        "sid": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
        "iss": "bmt-user",
        "aud": "bmt",
    }


async def forged_tokens(http: aiohttp.ClientSession, user_url: str) -> dict[str, str]:
    async with http.get(f"{user_url}/.well-known/jwks.json") as response:
        jwk = (await response.json())["keys"][0]
    kid, claims = jwk["kid"], _claims()
    payload = _b64(json.dumps(claims).encode())
    mine = Ed25519PrivateKey.generate()
    public_x = base64.urlsafe_b64decode(jwk["x"] + "==")
    real_header_ours = jwt.encode(claims, mine, algorithm="EdDSA", headers={"kid": kid})
    return {
        "alg none": _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
        + f".{payload}.",
        "alg none, no kid": _b64(b'{"alg":"none"}') + f".{payload}.",
        "our key, BMT's kid": real_header_ours,
        "our key, unknown kid": jwt.encode(
            claims, mine, algorithm="EdDSA", headers={"kid": "attacker"}
        ),
        "HS256 keyed with the public key": jwt.encode(
            claims, public_x, algorithm="HS256", headers={"kid": kid}
        ),
        "stripped signature": real_header_ours.rsplit(".", 1)[0] + ".",
    }


# One route per service that needs a role (admin where there is one).
GUARDED: dict[str, tuple[str, str, dict[str, Any]]] = {
    "user": ("POST", "/v1/users", {"json": {}}),
    "product": ("DELETE", "/v1/fabs/999999999", {}),
    "showtime": ("POST", "/v1/showtimes/999999999/release", {}),
    "order": ("GET", "/v1/orders", {}),
    "payment": ("GET", "/v1/payments/999999999", {}),
}


async def test_forged_access_tokens_are_refused_everywhere(
    http: aiohttp.ClientSession, bmt_platform: StackSettings, gateway: str
) -> None:
    tokens = await forged_tokens(http, service_url(bmt_platform, "user"))
    failures = []
    for service in SERVICES:
        method, path, kwargs = GUARDED[service]
        for base in (gateway, service_url(bmt_platform, service)):
            for name, token in tokens.items():
                got = await call(http, base, method, path, token=token, **kwargs)
                tried(f"forged token ({name})")
                if got.status != 401 or not got.is_problem():
                    failures.append(f"{name} at {base}{path}: {got.status} {got.body!r:.200}")
                elif "not valid" not in got.body["detail"]:
                    failures.append(f"{name} at {base}{path}: detail {got.body['detail']!r}")
    assert not failures, "\n".join(failures)


async def ended_session_refused(http: aiohttp.ClientSession, gateway: str, token: str) -> float:
    """Seconds until the gateway refuses `token` on a route of a service that cannot know the
    session ended (only the user service does)."""
    started = time.monotonic()

    async def refused() -> Any:
        got = await call(http, gateway, "GET", "/v1/orders", token=token)
        return got if got.status == 401 else None

    got = await eventually(refused, 10, "the gateway refusing the ended session's token")
    assert got.body["detail"] == "The access token is not valid: its session has ended", got
    return time.monotonic() - started


async def test_an_ended_sessions_access_token_is_refused_at_once(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    gateway: str,
    unique: str,
    figure: Callable[[str], None],
) -> None:
    delays = []
    for _ in range(5):
        token = (await new_account(http, bmt_platform, admin, "customer", unique)).token
        assert (await call(http, gateway, "GET", "/v1/orders", token=token)).status == 200
        assert (await call(http, gateway, "POST", "/v1/auth/logout", token=token)).status == 204
        delays.append(await ended_session_refused(http, gateway, token))
        tried("access token after logout")
    figure(
        f"\n[attacks] an access token is refused after logout within {max(delays) * 1000:.0f} ms"
        f" (worst of 5; median {statistics.median(delays) * 1000:.0f} ms)"
    )


async def test_a_refresh_token_of_a_reset_password_is_refused(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    gateway: str,
    mailbox: Mailbox,
    unique: str,
) -> None:
    victim = await new_account(http, bmt_platform, admin, "customer", unique)
    pair = await call(
        http, gateway, "POST", "/v1/auth/login", json={"email": victim.email, "password": PASSWORD}
    )
    assert pair.status == 200
    await call(http, gateway, "POST", "/v1/auth/password/otp", json={"email": victim.email})
    code = await otp_of(mailbox, victim.email)
    verified = await call(
        http, gateway, "POST", "/v1/auth/password/verify", json={"email": victim.email, "otp": code}
    )
    assert verified.status == 200, verified
    reset = await call(
        http,
        gateway,
        "POST",
        "/v1/auth/password/reset",
        json={
            "verification_token": verified.body["verification_token"],
            "new_password": "another long password",
        },
    )
    assert reset.status == 204, reset
    for refresh in (pair.body["refresh_token"], "made-up-" + uuid.uuid4().hex):
        got = await call(http, gateway, "POST", "/v1/auth/refresh", json={"refresh_token": refresh})
        tried("refresh with a revoked or made-up token")
        assert got.status == 401, got
        assert got.is_problem()
    # The access token of the ended session stops too, at every door of the gateway.
    await ended_session_refused(http, gateway, pair.body["access_token"])
    tried("access token of a session ended by a password reset")
    # The verification token is single use: a second reset with it fails.
    again = await call(
        http,
        gateway,
        "POST",
        "/v1/auth/password/reset",
        json={
            "verification_token": verified.body["verification_token"],
            "new_password": "a third long password",
        },
    )
    tried("reused verification token")
    assert again.status == 400, again


# Payments ---------------------------------------------------------------------------------


async def txn_ref(db: Callable[[str], Awaitable[asyncpg.Connection]], payment_id: int) -> str:
    conn = await db("bmt_payment")
    try:
        return str(await conn.fetchval("SELECT txn_ref FROM payments WHERE id = $1", payment_id))
    finally:
        await conn.close()


async def payment_status(http: aiohttp.ClientSession, gateway: str, token: str, pid: int) -> str:
    got = await call(http, gateway, "GET", f"/v1/payments/{pid}", token=token)
    assert got.status == 200, got
    return str(got.body["status"])


@pytest.mark.parametrize("tamper", ["signature", "amount"])
async def test_a_forged_or_changed_momo_ipn_is_refused(
    http: aiohttp.ClientSession,
    scene: Scene,
    gateway: str,
    sandbox: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
    tamper: str,
) -> None:
    order = scene.pending_order
    got = await call(
        http,
        gateway,
        "POST",
        "/v1/payments",
        token=scene.owner.token,
        json={"order_id": order["id"], "provider": "momo"},
    )
    status, payment = got.status, got.body
    assert status == 201, payment
    ref = await txn_ref(db, payment["payment_id"])
    body = {
        "partnerCode": "BMTLOCAL",
        "orderId": ref,
        "requestId": uuid.uuid4().hex,
        "amount": payment["amount"],
        "orderInfo": f"order {order['id']}",
        "orderType": "momo_wallet",
        "transId": 990_000_000 + payment["payment_id"],
        "resultCode": 0,
        "message": "Successful.",
        "payType": "qr",
        "responseTime": int(time.time() * 1000),
        "extraData": "",
    }
    async with http.post(
        f"{sandbox}/sandbox/ipn/momo", json={"body": body, "tamper": tamper}
    ) as response:
        answer = await response.json()
    tried(f"momo IPN ({tamper})")
    assert answer["status"] == 400, answer
    assert await payment_status(http, gateway, scene.owner.token, payment["payment_id"]) == (
        "created"
    )
    got = await call(http, gateway, "GET", f"/v1/orders/{order['id']}", token=scene.owner.token)
    assert got.body["status"] == "pending"


async def test_the_pay_url_replayed_as_an_ipn_changes_nothing(
    http: aiohttp.ClientSession, scene: Scene, gateway: str, sandbox: str
) -> None:
    """The pay URL is signed by the merchant with the same secret VNPay signs IPNs with, and
    every browser that opens it sees it: sent back as an IPN it must not count as a result."""
    victim = await call(
        http,
        gateway,
        "POST",
        "/v1/payments",
        token=scene.owner.token,
        json={"order_id": scene.pending_order["id"], "provider": "vnpay"},
    )
    assert victim.status == 201, victim
    params = dict(parse_qsl(urlsplit(victim.body["payment_url"]).query))
    replayed = await call(http, gateway, "GET", "/v1/payments/vnpay/ipn?" + urlencode(params))
    tried("pay URL replayed as IPN")
    status_after = await payment_status(http, gateway, scene.owner.token, victim.body["payment_id"])
    # The customer then pays for real: the gateway's IPN must be applied.
    async with http.post(
        f"{sandbox}/sandbox/pay",
        json={"payment_url": victim.body["payment_url"], "outcome": "success"},
    ) as response:
        paid = await response.json()
    final = await payment_status(http, gateway, scene.owner.token, victim.body["payment_id"])
    assert (status_after, final) == ("created", "succeeded"), (
        f"the replayed pay URL was answered {replayed.body} and left the payment {status_after};"
        f" the real IPN then got {paid['ipn_responses'][0]['body']}, the payment is {final}"
    )


async def test_signed_params_of_ones_own_payment_cannot_pay_someone_elses(
    http: aiohttp.ClientSession, scene: Scene, gateway: str, sandbox: str
) -> None:
    # The victim (the scene's owner) has a pending order with an open VNPay payment.
    victim = await call(
        http,
        gateway,
        "POST",
        "/v1/payments",
        token=scene.owner.token,
        json={"order_id": scene.pending_order["id"], "provider": "vnpay"},
    )
    assert victim.status == 201, victim
    victim_params = dict(parse_qsl(urlsplit(victim.body["payment_url"]).query))
    # The attacker pays a cheap order of their own and keeps the signed return params...
    attacker = scene.other
    own = await call(
        http,
        gateway,
        "POST",
        "/v1/orders",
        token=attacker.token,
        json={"showtime_id": scene.showtime_id, "seats": [scene.free_seat]},
    )
    assert own.status == 201, own
    opened = await call(
        http,
        gateway,
        "POST",
        "/v1/payments",
        token=attacker.token,
        json={"order_id": own.body["id"], "provider": "vnpay"},
    )
    assert opened.status == 201, opened
    async with http.post(
        f"{sandbox}/sandbox/pay",
        json={"payment_url": opened.body["payment_url"], "outcome": "success"},
    ) as response:
        paid = await response.json()
    signed = dict(parse_qsl(urlsplit(paid["return_url"]).query))
    # ...and points them at the victim's payment (with or without the victim's amount).
    for changes in (
        {"vnp_TxnRef": victim_params["vnp_TxnRef"]},
        {"vnp_TxnRef": victim_params["vnp_TxnRef"], "vnp_Amount": victim_params["vnp_Amount"]},
    ):
        got = await call(
            http, gateway, "GET", "/v1/payments/vnpay/ipn?" + urlencode({**signed, **changes})
        )
        tried("own signed IPN pointed at someone else's payment")
        assert got.body["RspCode"] == "97", got
    assert (
        await payment_status(http, gateway, scene.owner.token, victim.body["payment_id"])
        == "created"
    )
    order = await call(
        http, gateway, "GET", f"/v1/orders/{scene.pending_order['id']}", token=scene.owner.token
    )
    assert order.body["status"] == "pending"


async def test_made_up_ticket_codes_are_refused(
    http: aiohttp.ClientSession, scene: Scene, gateway: str
) -> None:
    first, second = scene.tickets[0], scene.tickets[1]
    id_1, mac_1 = first["code"].split(".", 1)
    id_2, mac_2 = second["code"].split(".", 1)
    made_up = [
        f"{id_1}.{'0' * len(mac_1)}",  # a real ticket, a wrong MAC
        f"{id_1}.{mac_2}",  # another ticket's MAC
        f"{id_2}.{mac_1}",
        f"T999999999.{mac_1}",  # no such ticket
        f"{id_1}",  # no MAC at all
        f"{id_1}.{mac_1}x",  # a MAC with a tail
        "T1.x' OR '1'='1",
        "not a ticket",
    ]
    for code in made_up:
        got = await call(
            http,
            gateway,
            "POST",
            "/v1/tickets/check-in",
            token=scene.staff.token,
            json={"code": code},
        )
        tried("made-up ticket code")
        assert got.status == 422, (code, got)
        assert got.body["detail"] == "This is not a valid ticket code" or got.body[
            "detail"
        ].startswith("The body is invalid: code: String should have"), got
    # The real codes still check in, once each: nothing above touched them.
    for ticket in (first, second):
        got = await call(
            http,
            gateway,
            "POST",
            "/v1/tickets/check-in",
            token=scene.staff.token,
            json={"code": ticket["code"]},
        )
        assert got.status == 200, got


# Logs (keep last) -------------------------------------------------------------------------


def search_logs(folder: Path, secrets: dict[str, str]) -> tuple[list[str], list[Path]]:
    found = []
    logs = sorted(folder.glob("*.log"))
    for path in logs:
        text = path.read_text(errors="replace")
        for name, secret in secrets.items():
            if secret in text:
                found.append(f"{name} in {path.name}")
        recent = text[LOG_OFFSETS.get(path.name, 0) :]
        for code in CODES_SEEN:
            if re.search(rf"(?<![\d.:]){code}(?![\d])", recent):
                found.append(f"mailed code {code} in {path.name}")
    return found, logs


async def test_no_secret_appears_in_the_logs(
    bmt_platform: StackSettings, figure: Callable[[str], None]
) -> None:
    keys = Secrets(bmt_platform)
    pem = keys.jwt_private_key()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    secrets = {
        "admin password": keys.admin_password().strip(),
        "OTP pepper": keys.otp_pepper().strip(),
        "ticket key": keys.ticket_key().strip(),
        "JWT private key (base64 body)": body,
    }
    assert all(len(v) >= 16 for v in secrets.values()), "a secret is suspiciously short"
    found, logs = await asyncio.to_thread(search_logs, Path(bmt_platform.logs), secrets)
    tried("secret looked for in the logs", len(secrets) + len(CODES_SEEN))
    figure(
        f"\n[attacks] {len(ATTACKS)} attacks tried ({len(set(ATTACKS))} kinds);"
        f" {len(logs)} logs searched for {len(secrets)} secrets and {len(CODES_SEEN)} mailed codes"
    )
    assert CODES_SEEN, "no mailed code was seen: the log check would prove nothing"
    assert not found, found
