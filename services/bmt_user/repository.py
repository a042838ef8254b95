"""The user service's SQL. Every function takes the connection (and so the transaction) to use."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from bmt_common.db import Connection


async def save_otp(
    conn: Connection, email: str, purpose: str, code_hash: bytes, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO otps (email, purpose, code_hash, expires_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (email, purpose) DO UPDATE SET code_hash = excluded.code_hash,"
        " expires_at = excluded.expires_at, attempts = 0, used_at = NULL",
        email,
        purpose,
        code_hash,
        expires_at,
    )


async def count_requests_since(
    conn: Connection, email: str, purpose: str, since: dt.datetime
) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM otp_requests WHERE email = $1 AND purpose = $2 AND requested_at > $3",
        email,
        purpose,
        since,
    )
    return count


async def record_request(conn: Connection, email: str, purpose: str) -> None:
    await conn.execute("INSERT INTO otp_requests (email, purpose) VALUES ($1, $2)", email, purpose)


async def otp_for_update(conn: Connection, email: str, purpose: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT code_hash, expires_at, attempts, used_at FROM otps"
        " WHERE email = $1 AND purpose = $2 FOR UPDATE",
        email,
        purpose,
    )


async def count_wrong_attempt(conn: Connection, email: str, purpose: str) -> None:
    await conn.execute(
        "UPDATE otps SET attempts = attempts + 1 WHERE email = $1 AND purpose = $2",
        email,
        purpose,
    )


async def use_otp(conn: Connection, email: str, purpose: str) -> None:
    await conn.execute(
        "UPDATE otps SET used_at = now() WHERE email = $1 AND purpose = $2", email, purpose
    )


async def add_verification(
    conn: Connection, token_hash: bytes, email: str, purpose: str, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO verifications (token_hash, email, purpose, expires_at)"
        " VALUES ($1, $2, $3, $4)",
        token_hash,
        email,
        purpose,
        expires_at,
    )


async def spend_verification(conn: Connection, token_hash: bytes, purpose: str) -> str | None:
    """The verified e-mail, if the token is valid and unused; it is used up either way."""
    email: str | None = await conn.fetchval(
        "UPDATE verifications SET used_at = now() WHERE token_hash = $1 AND purpose = $2"
        " AND used_at IS NULL AND expires_at > now() RETURNING email",
        token_hash,
        purpose,
    )
    return email


async def user_by_email(conn: Connection, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, email, role::text AS role, name, birthday, sex, password_hash"
        " FROM users WHERE email = $1",
        email,
    )


async def user_by_id(conn: Connection, user_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, email, role::text AS role, name, birthday, sex, password_hash"
        " FROM users WHERE id = $1",
        user_id,
    )


async def create_user(
    conn: Connection,
    *,
    email: str,
    password_hash: str,
    role: str,
    name: str,
    birthday: dt.date | None,
    sex: str | None,
) -> asyncpg.Record | None:
    """The new user, or None when the e-mail already has an account."""
    return await conn.fetchrow(
        "INSERT INTO users (email, password_hash, role, name, birthday, sex)"
        " VALUES ($1, $2, $3::user_role, $4, $5, $6) ON CONFLICT (email) DO NOTHING"
        " RETURNING id, email, role::text AS role, name, birthday, sex, password_hash",
        email,
        password_hash,
        role,
        name,
        birthday,
        sex,
    )


async def update_profile(
    conn: Connection, user_id: int, name: str | None, birthday: dt.date | None, sex: str | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE users SET name = coalesce($2, name), birthday = coalesce($3, birthday),"
        " sex = coalesce($4, sex), updated_at = now() WHERE id = $1"
        " RETURNING id, email, role::text AS role, name, birthday, sex, password_hash",
        user_id,
        name,
        birthday,
        sex,
    )


async def set_password(conn: Connection, user_id: int, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        user_id,
        password_hash,
    )


async def admin_exists(conn: Connection) -> bool:
    found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin')")
    return found


async def create_session(
    conn: Connection, session_id: uuid.UUID, user_id: int, expires_at: dt.datetime
) -> None:
    await conn.execute(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)",
        session_id,
        user_id,
        expires_at,
    )


async def add_refresh_token(conn: Connection, token_hash: bytes, session_id: uuid.UUID) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        token_hash,
        session_id,
    )


async def refresh_token_for_update(conn: Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT r.session_id, r.replaced_at, s.user_id, s.expires_at, s.revoked_at"
        " FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id"
        " WHERE r.token_hash = $1 FOR UPDATE OF r, s",
        token_hash,
    )


async def replace_refresh_token(conn: Connection, token_hash: bytes) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET replaced_at = now() WHERE token_hash = $1", token_hash
    )


async def revoke_session(conn: Connection, session_id: uuid.UUID) -> asyncpg.Record | None:
    """The revoked session (user id, expiry), or None if it was already revoked."""
    return await conn.fetchrow(
        "UPDATE sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL"
        " RETURNING id, user_id, expires_at",
        session_id,
    )


async def revoke_user_sessions(conn: Connection, user_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL"
        " RETURNING id, user_id, expires_at",
        user_id,
    )


async def session_active(conn: Connection, session_id: uuid.UUID) -> bool:
    active: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND revoked_at IS NULL"
        " AND expires_at > now())",
        session_id,
    )
    return active
