"""Flow 1 through the gateway: e-mail code, verification, account, sessions."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from support import Client, Mailbox, eventually

PASSWORD = "correct horse battery"
PROFILE = {"name": "Alice Nguyen", "birthday": "1995-04-12", "sex": "female"}


async def register(client: Client, mailbox: Mailbox, email: str) -> dict[str, object]:
    """The three calls of the workshop; returns the created account."""
    status, body = await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    assert status == 202, body
    otp = await mailbox.otp(email)
    status, body = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    assert status == 200, body
    status, account = await client.call(
        "POST",
        "/v1/auth/register/complete",
        json={"verification_token": body["verification_token"], "password": PASSWORD, **PROFILE},
    )
    assert status == 201, account
    return dict(account)


async def login(client: Client, email: str, password: str = PASSWORD) -> dict[str, str]:
    status, body = await client.call(
        "POST", "/v1/auth/login", json={"email": email, "password": password}
    )
    assert status == 200, body
    return dict(body)


async def test_register_login_and_read_my_profile(
    client: Client, mailbox: Mailbox, email: str
) -> None:
    account = await register(client, mailbox, email)
    assert account["email"] == email
    assert account["role"] == "customer"
    tokens = await login(client, email)
    status, me = await client.call("GET", "/v1/users/me", token=tokens["access_token"])
    assert status == 200, me
    assert me == {**account, "name": PROFILE["name"]}
    # A welcome mail follows the registration.
    mails = await mailbox.wait_for(email, 2)
    assert mails[1]["subject"] == "Welcome to BMT, Alice Nguyen"


async def test_the_client_cannot_choose_its_role(
    client: Client, mailbox: Mailbox, email: str
) -> None:
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    otp = await mailbox.otp(email)
    _, verified = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    status, problem = await client.call(
        "POST",
        "/v1/auth/register/complete",
        json={
            "verification_token": verified["verification_token"],
            "password": PASSWORD,
            "role": "admin",
            **PROFILE,
        },
    )
    assert status == 422
    assert problem["errors"] == [{"field": "role", "message": "is not a field of this request"}]
    assert problem["detail"] == "The body is invalid: role: is not a field of this request"


async def test_five_wrong_codes_lock_the_code(client: Client, mailbox: Mailbox, email: str) -> None:
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    otp = await mailbox.otp(email)
    wrong = f"{(int(otp) + 1) % 1_000_000:06d}"
    for _ in range(5):
        status, problem = await client.call(
            "POST", "/v1/auth/register/verify", json={"email": email, "otp": wrong}
        )
        assert status == 400, problem
    status, problem = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    assert status == 429
    assert problem["detail"] == "Too many wrong codes; request a new code"
    # A new code works again.
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    fresh = await mailbox.otp(email, 2)
    status, _ = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": fresh}
    )
    assert status == 200


async def test_an_expired_code_fails(
    client: Client,
    mailbox: Mailbox,
    email: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    otp = await mailbox.otp(email)
    conn = await db("bmt_user")
    try:  # ten minutes pass
        await conn.execute(
            "UPDATE otps SET expires_at = now() - interval '1 second' WHERE email = $1", email
        )
    finally:
        await conn.close()
    status, problem = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    assert status == 400
    assert "expired" in problem["detail"]


async def test_a_code_is_single_use(client: Client, mailbox: Mailbox, email: str) -> None:
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    otp = await mailbox.otp(email)
    first, _ = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    second, _ = await client.call(
        "POST", "/v1/auth/register/verify", json={"email": email, "otp": otp}
    )
    assert (first, second) == (200, 400)


async def test_resends_are_capped_per_hour(client: Client, email: str) -> None:
    statuses = [
        (await client.call("POST", "/v1/auth/register/otp", json={"email": email}))[0]
        for _ in range(6)
    ]
    assert statuses == [202] * 5 + [429]


async def test_registration_does_not_reveal_an_existing_account(
    client: Client,
    new_client: Callable[[], Client],
    mailbox: Mailbox,
    email: str,
    db: Callable[[str], Awaitable[asyncpg.Connection]],
) -> None:
    await register(client, mailbox, email)
    stranger, unknown = new_client(), f"nobody-{email}"
    known_answer = await stranger.call("POST", "/v1/auth/register/otp", json={"email": email})
    unknown_answer = await stranger.call("POST", "/v1/auth/register/otp", json={"email": unknown})
    assert known_answer == unknown_answer
    # Only the address without an account was sent a code.
    conn = await db("bmt_user")
    try:
        mailed = await conn.fetch(
            "SELECT aggregate_id FROM outboxes WHERE event_type = 'otp_requested'"
            " AND aggregate_id = any($1::text[])",
            [email, unknown],
        )
    finally:
        await conn.close()
    assert sorted(r["aggregate_id"] for r in mailed) == [email, unknown]  # email: its first code
    assert len(await mailbox.wait_for(unknown)) == 1


async def test_logout_revokes_the_session(client: Client, mailbox: Mailbox, email: str) -> None:
    await register(client, mailbox, email)
    tokens = await login(client, email)
    status, _ = await client.call("POST", "/v1/auth/logout", token=tokens["access_token"])
    assert status == 204
    status, problem = await client.call("GET", "/v1/users/me", token=tokens["access_token"])
    assert status == 401
    assert "session" in problem["detail"]
    status, _ = await client.call(
        "POST", "/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert status == 401


async def test_refresh_rotates_and_a_replayed_token_ends_the_session(
    client: Client, mailbox: Mailbox, email: str
) -> None:
    await register(client, mailbox, email)
    first = await login(client, email)
    status, second = await client.call(
        "POST", "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    status, _ = await client.call("GET", "/v1/users/me", token=second["access_token"])
    assert status == 200
    # The first refresh token comes back: stolen. The whole session ends.
    status, problem = await client.call(
        "POST", "/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert status == 401
    assert "already used" in problem["detail"]
    status, _ = await client.call(
        "POST", "/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert status == 401


async def test_password_reset(client: Client, mailbox: Mailbox, email: str) -> None:
    await register(client, mailbox, email)
    old_session = await login(client, email)
    status, _ = await client.call("POST", "/v1/auth/password/otp", json={"email": email})
    assert status == 202
    otp = await mailbox.otp(email, 2)  # the second code mail
    status, verified = await client.call(
        "POST", "/v1/auth/password/verify", json={"email": email, "otp": otp}
    )
    assert status == 200, verified
    new_password = "a brand new passphrase"
    status, _ = await client.call(
        "POST",
        "/v1/auth/password/reset",
        json={"verification_token": verified["verification_token"], "new_password": new_password},
    )
    assert status == 204
    status, _ = await client.call("GET", "/v1/users/me", token=old_session["access_token"])
    assert status == 401
    status, _ = await client.call(
        "POST", "/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert status == 401
    await login(client, email, new_password)


async def test_a_customer_cannot_reach_an_admin_route(
    client: Client, mailbox: Mailbox, email: str
) -> None:
    await register(client, mailbox, email)
    tokens = await login(client, email)
    status, problem = await client.call(
        "POST",
        "/v1/users",
        token=tokens["access_token"],
        json={"email": f"x{email}", "password": PASSWORD, "name": "X", "role": "admin"},
    )
    assert status == 403
    assert problem["detail"] == "This route needs the admin role"


async def test_a_replayed_otp_event_sends_no_second_mail(
    client: Client, mailbox: Mailbox, email: str, kafka_bootstrap: str
) -> None:
    await client.call("POST", "/v1/auth/register/otp", json={"email": email})
    await mailbox.wait_for(email)
    topic = "bmt_user.public.outboxes"
    # Find the change event of this e-mail's code and publish it once more.
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    try:

        async def find() -> tuple[bytes, bytes, int] | None:
            for records in (await reader.getmany(timeout_ms=500)).values():
                for record in records:
                    after = json.loads(record.value).get("after") or {}
                    if after.get("aggregate_id") == email:
                        return record.value, record.key, record.partition
            return None

        value, key, partition_id = await eventually(find, 30, "the otp_requested change event")
    finally:
        await reader.stop()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, value, key=key, partition=partition_id)
    finally:
        await producer.stop()
    # Wait until the mail service has consumed past the duplicate, then count the mails.
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        partition = TopicPartition(topic, sent.partition)

        async def consumed() -> bool | None:
            offsets = await admin.list_consumer_group_offsets("bmt-mail")
            done = offsets.get(partition)
            return True if done is not None and done.offset > sent.offset else None

        await eventually(consumed, 30, "the mail service consuming the duplicate")
    finally:
        await admin.close()
    assert len(await mailbox.messages(email)) == 1
