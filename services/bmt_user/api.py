"""The user service's routes: registration in three calls, login, refresh, logout, password
reset, profile, admin-created accounts and the JWKS."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid

import asyncpg
from aiohttp import web

from bmt_common import outbox
from bmt_common.db import POOL, Connection
from bmt_common.events import OtpRequested, SessionRevoked, UserRegistered
from bmt_common.inputs import body_of, claims_of
from bmt_common.problems import Problem
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_user import domain
from bmt_user import repository as repo
from bmt_user.domain import (
    Accepted,
    CompleteRegistration,
    CreateUser,
    EmailRequest,
    Jwks,
    LoginRequest,
    ProfileUpdate,
    Purpose,
    RefreshRequest,
    ResetPassword,
    TokenPair,
    User,
    Verified,
    VerifyRequest,
)
from bmt_user.passwords import PASSWORDS
from bmt_user.settings import UserSettings

api = Api("BMT user service", "Accounts, e-mail codes, sessions and the token signing keys.")
SETTINGS = web.AppKey("settings", UserSettings)
SIGNING_KEY = web.AppKey("signing_key", domain.SigningKey)

CODE_SENT = (
    "If this e-mail can be used for this, a 6-digit code is on its way. "
    "It is valid for {minutes} minutes."
)
BAD_CODE = "The code is wrong or has expired; check it or request a new one"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _user(row: asyncpg.Record) -> User:
    return User.model_validate(dict(row))


async def _request_code(request: web.Request, purpose: Purpose) -> web.Response:
    email = body_of(request, EmailRequest).email
    settings, now = request.app[SETTINGS], _now()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        # One request at a time per e-mail, so the hourly cap cannot be raced.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{purpose}:{email}")
        since = now - dt.timedelta(hours=1)
        if await repo.count_requests_since(conn, email, purpose, since) >= (
            settings.otp_requests_per_hour
        ):
            raise Problem(
                429,
                f"At most {settings.otp_requests_per_hour} codes an hour can be requested"
                " for one e-mail; try again later",
                headers={"Retry-After": "3600"},
            )
        await repo.record_request(conn, email, purpose)
        has_account = await repo.user_by_email(conn, email) is not None
        code = domain.new_otp()
        expires = now + dt.timedelta(minutes=settings.otp_minutes)
        # A code is stored either way, so that checking it behaves the same whether or not
        # the e-mail has an account; it is only mailed where it can be used.
        await repo.save_otp(
            conn, email, purpose, _code_hash(settings, purpose, email, code), expires
        )
        if has_account == (purpose == "password_reset"):
            await outbox.add(
                conn, OtpRequested(email=email, otp=code, purpose=purpose, expires_at=expires)
            )
    return json_response(Accepted(message=CODE_SENT.format(minutes=settings.otp_minutes)), 202)


def _code_hash(settings: UserSettings, purpose: str, email: str, code: str) -> bytes:
    return domain.keyed_hash(settings.otp_pepper.get_secret_value(), f"{purpose}:{email}:{code}")


async def _verify_code(request: web.Request, purpose: Purpose) -> web.Response:
    body = body_of(request, VerifyRequest)
    settings, now = request.app[SETTINGS], _now()
    token = domain.new_secret_token()
    wrong = False
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repo.otp_for_update(conn, body.email, purpose)
        if row is None or row["used_at"] is not None or row["expires_at"] <= now:
            raise Problem(400, BAD_CODE)
        if row["attempts"] >= settings.otp_max_attempts:
            raise Problem(429, "Too many wrong codes; request a new code")
        if hmac.compare_digest(
            row["code_hash"], _code_hash(settings, purpose, body.email, body.otp)
        ):
            await repo.use_otp(conn, body.email, purpose)
            await repo.add_verification(
                conn,
                domain.token_hash(token),
                body.email,
                purpose,
                now + dt.timedelta(minutes=settings.verification_minutes),
            )
        else:
            await repo.count_wrong_attempt(conn, body.email, purpose)
            wrong = True  # raised after the commit, so that the try is counted
    if wrong:
        raise Problem(400, BAD_CODE)
    return json_response(
        Verified(verification_token=token, expires_in=settings.verification_minutes * 60)
    )


@api.route(
    "POST",
    "/v1/auth/register/otp",
    summary="Send a registration code to an e-mail",
    tag="registration",
    body=EmailRequest,
    response=Accepted,
    status=202,
)
async def request_registration_code(request: web.Request) -> web.Response:
    return await _request_code(request, "registration")


@api.route(
    "POST",
    "/v1/auth/register/verify",
    summary="Verify the e-mail with its code",
    tag="registration",
    body=VerifyRequest,
    response=Verified,
    errors=(429,),
)
async def verify_registration_code(request: web.Request) -> web.Response:
    return await _verify_code(request, "registration")


@api.route(
    "POST",
    "/v1/auth/register/complete",
    summary="Complete the account of a verified e-mail",
    tag="registration",
    body=CompleteRegistration,
    response=User,
    status=201,
    errors=(409,),
)
async def complete_registration(request: web.Request) -> web.Response:
    body = body_of(request, CompleteRegistration)
    password_hash = await request.app[PASSWORDS].hash(body.password.get_secret_value())
    async with request.app[POOL].acquire() as conn, conn.transaction():
        email = await repo.spend_verification(
            conn, domain.token_hash(body.verification_token), "registration"
        )
        if email is None:
            raise Problem(400, "The verification token is invalid, used or expired; verify again")
        row = await repo.create_user(
            conn,
            email=email,
            password_hash=password_hash,
            role="customer",
            name=body.name,
            birthday=body.birthday,
            sex=body.sex,
        )
        if row is None:
            raise Problem(409, "This e-mail already has an account; log in or reset the password")
        await outbox.add(conn, UserRegistered(user_id=row["id"], email=email, name=body.name))
    return json_response(_user(row), 201)


async def _open_session(request: web.Request, conn: Connection, user: asyncpg.Record) -> TokenPair:
    settings, now = request.app[SETTINGS], _now()
    session_id, refresh = uuid.uuid4(), domain.new_secret_token()
    await repo.create_session(
        conn, session_id, user["id"], now + dt.timedelta(days=settings.refresh_token_days)
    )
    await repo.add_refresh_token(conn, domain.token_hash(refresh), session_id)
    return _pair(request, user, session_id, refresh)


def _pair(
    request: web.Request, user: asyncpg.Record, session_id: uuid.UUID, refresh: str
) -> TokenPair:
    settings = request.app[SETTINGS]
    access = domain.access_token(
        request.app[SIGNING_KEY],
        user_id=user["id"],
        email=user["email"],
        role=user["role"],
        session_id=session_id,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        minutes=settings.access_token_minutes,
        now=_now(),
    )
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=settings.access_token_minutes * 60
    )


@api.route(
    "POST",
    "/v1/auth/login",
    summary="Log in with e-mail and password",
    tag="sessions",
    body=LoginRequest,
    response=TokenPair,
    errors=(401,),
)
async def login(request: web.Request) -> web.Response:
    body = body_of(request, LoginRequest)
    async with request.app[POOL].acquire() as conn:
        user = await repo.user_by_email(conn, body.email)
    # Verified even without an account, so the answer takes as long either way; no connection is
    # held meanwhile.
    ok = await request.app[PASSWORDS].matches(
        user["password_hash"] if user else None, body.password.get_secret_value()
    )
    if user is None or not ok:
        raise Problem(401, "The e-mail or the password is wrong")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        pair = await _open_session(request, conn, user)
    return json_response(pair)


@api.route(
    "POST",
    "/v1/auth/refresh",
    summary="Trade a refresh token for a new pair (rotation)",
    tag="sessions",
    body=RefreshRequest,
    response=TokenPair,
    errors=(401,),
)
async def refresh(request: web.Request) -> web.Response:
    presented = domain.token_hash(body_of(request, RefreshRequest).refresh_token)
    reused, user, new_refresh = False, None, ""
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repo.refresh_token_for_update(conn, presented)
        if row is None:
            raise Problem(401, "The refresh token is not valid")
        if row["revoked_at"] is not None or row["expires_at"] <= _now():
            raise Problem(401, "The session has ended; log in again")
        if row["replaced_at"] is not None:
            # A used token came back: someone holds a copy. End the whole session.
            await _revoke(conn, row["session_id"])
            reused = True
        else:
            await repo.replace_refresh_token(conn, presented)
            new_refresh = domain.new_secret_token()
            await repo.add_refresh_token(conn, domain.token_hash(new_refresh), row["session_id"])
            user = await repo.user_by_id(conn, row["user_id"])
    if reused or user is None:
        raise Problem(401, "This refresh token was already used; the session is revoked")
    return json_response(_pair(request, user, row["session_id"], new_refresh))


async def _revoke(conn: Connection, session_id: uuid.UUID) -> None:
    revoked = await repo.revoke_session(conn, session_id)
    if revoked is not None:
        await outbox.add(
            conn,
            SessionRevoked(
                user_id=revoked["user_id"],
                session_id=str(revoked["id"]),
                expires_at=revoked["expires_at"],
            ),
        )


async def _signed_in_user(request: web.Request, conn: Connection) -> asyncpg.Record:
    """The caller's account; its session must still be open (logout revokes at once here)."""
    claims = claims_of(request)
    if not await repo.session_active(conn, uuid.UUID(claims.sid)):
        raise Problem(401, "The session of this token has ended; log in again")
    user = await repo.user_by_id(conn, int(claims.sub))
    if user is None:
        raise Problem(401, "The account of this token no longer exists")
    return user


@api.route(
    "POST",
    "/v1/auth/logout",
    summary="End the session of the access token",
    tag="sessions",
    auth="user",
    status=204,
)
async def logout(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _revoke(conn, uuid.UUID(claims_of(request).sid))
    return web.Response(status=204)


@api.route(
    "POST",
    "/v1/auth/password/otp",
    summary="Send a password-reset code",
    tag="password",
    body=EmailRequest,
    response=Accepted,
    status=202,
)
async def request_reset_code(request: web.Request) -> web.Response:
    return await _request_code(request, "password_reset")


@api.route(
    "POST",
    "/v1/auth/password/verify",
    summary="Verify a password-reset code",
    tag="password",
    body=VerifyRequest,
    response=Verified,
    errors=(429,),
)
async def verify_reset_code(request: web.Request) -> web.Response:
    return await _verify_code(request, "password_reset")


@api.route(
    "POST",
    "/v1/auth/password/reset",
    summary="Set a new password; every session ends",
    tag="password",
    body=ResetPassword,
    status=204,
)
async def reset_password(request: web.Request) -> web.Response:
    body = body_of(request, ResetPassword)
    password_hash = await request.app[PASSWORDS].hash(body.new_password.get_secret_value())
    async with request.app[POOL].acquire() as conn, conn.transaction():
        email = await repo.spend_verification(
            conn, domain.token_hash(body.verification_token), "password_reset"
        )
        user = await repo.user_by_email(conn, email) if email else None
        if user is None:
            raise Problem(400, "The verification token is invalid, used or expired; verify again")
        await repo.set_password(conn, user["id"], password_hash)
        for session in await repo.revoke_user_sessions(conn, user["id"]):
            await outbox.add(
                conn,
                SessionRevoked(
                    user_id=user["id"],
                    session_id=str(session["id"]),
                    expires_at=session["expires_at"],
                ),
            )
    return web.Response(status=204)


@api.route("GET", "/v1/users/me", summary="My profile", tag="profile", auth="user", response=User)
async def read_profile(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        return json_response(_user(await _signed_in_user(request, conn)))


@api.route(
    "PATCH",
    "/v1/users/me",
    summary="Change my name, birthday or sex",
    tag="profile",
    auth="user",
    body=ProfileUpdate,
    response=User,
)
async def update_profile(request: web.Request) -> web.Response:
    body = body_of(request, ProfileUpdate)
    async with request.app[POOL].acquire() as conn:
        user = await _signed_in_user(request, conn)
        row = await repo.update_profile(conn, user["id"], body.name, body.birthday, body.sex)
        assert row is not None
    return json_response(_user(row))


@api.route(
    "POST",
    "/v1/users",
    summary="Create an account with a role (staff, admin, customer)",
    tag="admin",
    auth="admin",
    body=CreateUser,
    response=User,
    status=201,
    errors=(409,),
)
async def create_user(request: web.Request) -> web.Response:
    body = body_of(request, CreateUser)
    password_hash = await request.app[PASSWORDS].hash(body.password.get_secret_value())
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await repo.create_user(
            conn,
            email=body.email,
            password_hash=password_hash,
            role=body.role,
            name=body.name,
            birthday=None,
            sex=None,
        )
        if row is None:
            raise Problem(409, f"{body.email} already has an account")
        await outbox.add(conn, UserRegistered(user_id=row["id"], email=body.email, name=body.name))
    return json_response(_user(row), 201)


@api.route(
    "GET",
    "/.well-known/jwks.json",
    summary="The public keys that verify access tokens",
    tag="keys",
    response=Jwks,
)
async def jwks(request: web.Request) -> web.Response:
    return json_response(Jwks(keys=[request.app[SIGNING_KEY].jwk()]))
