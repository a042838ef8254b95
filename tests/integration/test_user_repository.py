"""The user service's SQL against PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

from bmt_user import repository as repo
from bmt_user.app import MIGRATIONS
from integration.conftest import Scratch


def later() -> dt.datetime:
    """Ten minutes on, read per test: the suite may reach this module long after collection."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)


async def test_a_new_code_replaces_the_old_and_resets_the_tries(scratch_database: Scratch) -> None:
    async with scratch_database(MIGRATIONS) as conn:
        await repo.save_otp(conn, "a@b.co", "registration", b"one", later())
        await repo.count_wrong_attempt(conn, "a@b.co", "registration")
        await repo.use_otp(conn, "a@b.co", "registration")
        await repo.save_otp(conn, "a@b.co", "registration", b"two", later())
        row = await repo.otp_for_update(conn, "a@b.co", "registration")
        assert row is not None
        assert (row["code_hash"], row["attempts"], row["used_at"]) == (b"two", 0, None)


async def test_a_verification_is_spent_once_and_only_for_its_purpose(
    scratch_database: Scratch,
) -> None:
    async with scratch_database(MIGRATIONS) as conn:
        await repo.add_verification(conn, b"h", "a@b.co", "registration", later())
        assert await repo.spend_verification(conn, b"h", "password_reset") is None
        assert await repo.spend_verification(conn, b"h", "registration") == "a@b.co"
        assert await repo.spend_verification(conn, b"h", "registration") is None
        await repo.add_verification(
            conn, b"old", "a@b.co", "registration", later() - dt.timedelta(hours=1)
        )
        assert await repo.spend_verification(conn, b"old", "registration") is None


async def test_an_email_has_one_account(scratch_database: Scratch) -> None:
    async with scratch_database(MIGRATIONS) as conn:
        fields = {
            "password_hash": "h",
            "role": "customer",
            "name": "A",
            "birthday": None,
            "sex": None,
        }
        first = await repo.create_user(conn, email="a@b.co", **fields)  # type: ignore[arg-type]
        again = await repo.create_user(conn, email="a@b.co", **fields)  # type: ignore[arg-type]
        assert first is not None
        assert first["role"] == "customer"
        assert again is None


async def test_revoking_a_session_ends_it_once(scratch_database: Scratch) -> None:
    async with scratch_database(MIGRATIONS) as conn:
        user = await repo.create_user(
            conn, email="a@b.co", password_hash="h", role="admin", name="A", birthday=None, sex=None
        )
        assert user is not None
        session = uuid.uuid4()
        await repo.create_session(conn, session, user["id"], later())
        assert await repo.session_active(conn, session)
        assert await repo.revoke_session(conn, session) is not None
        assert await repo.revoke_session(conn, session) is None
        assert not await repo.session_active(conn, session)
