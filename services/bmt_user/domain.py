"""The rules of accounts, codes and tokens, free of I/O."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AfterValidator, BaseModel, Field, SecretStr

from bmt_common.fields import Strict

Role = Literal["customer", "staff", "admin"]
Purpose = Literal["registration", "password_reset"]
Sex = Literal["female", "male", "other"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HASHER = PasswordHasher()  # argon2id, RFC 9106's second recommended parameters
# Hashed when an e-mail has no account, so that a login takes as long either way.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def _email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("must be an e-mail address")
    return value


def _birthday(value: dt.date) -> dt.date:
    if not dt.date(1900, 1, 1) <= value <= dt.date.today():
        raise ValueError("must be a date between 1900-01-01 and today")
    return value


Email = Annotated[str, AfterValidator(_email)]
Password = Annotated[SecretStr, Field(min_length=8, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Birthday = Annotated[dt.date, AfterValidator(_birthday)]
Otp = Annotated[str, Field(pattern=r"^\d{6}$")]


# Requests
class EmailRequest(Strict):
    email: Email


class VerifyRequest(Strict):
    email: Email
    otp: Otp


class CompleteRegistration(Strict):
    verification_token: str = Field(min_length=20, max_length=200)
    password: Password
    name: Name
    birthday: Birthday
    sex: Sex


class LoginRequest(Strict):
    email: Email
    password: SecretStr = Field(max_length=128)


class RefreshRequest(Strict):
    refresh_token: str = Field(min_length=20, max_length=200)


class ResetPassword(Strict):
    verification_token: str = Field(min_length=20, max_length=200)
    new_password: Password


class ProfileUpdate(Strict):
    name: Name | None = None
    birthday: Birthday | None = None
    sex: Sex | None = None


class CreateUser(Strict):
    email: Email
    password: Password
    name: Name
    role: Role


# Responses
class Accepted(BaseModel):
    message: str


class Verified(BaseModel):
    verification_token: str
    expires_in: int


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name)
    expires_in: int


class User(BaseModel):
    id: int
    email: str
    role: Role
    name: str
    birthday: dt.date | None
    sex: Sex | None


class Jwks(BaseModel):
    keys: list[dict[str, str]]


# Codes
def new_otp() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def keyed_hash(pepper: str, value: str) -> bytes:
    return hmac.new(pepper.encode(), value.encode(), hashlib.sha256).digest()


def new_secret_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# Passwords (slow on purpose: call from a worker thread)
def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


# Access tokens
@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    kid: str

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the JWT signing key must be an Ed25519 private key")
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        # RFC 7638 thumbprint of the OKP key: a stable id that changes with the key.
        canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{_b64(raw)}"}}'
        return cls(key, _b64(hashlib.sha256(canonical.encode()).digest()))

    def jwk(self) -> dict[str, str]:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64(raw),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def public_key(self) -> Any:
        return self.private.public_key()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def access_token(
    key: SigningKey,
    *,
    user_id: int,
    email: str,
    role: str,
    session_id: uuid.UUID,
    issuer: str,
    audience: str,
    minutes: int,
    now: dt.datetime,
) -> str:
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": str(user_id),
        "email": email,
        "role": role,
        "sid": str(session_id),
        "iat": int(now.timestamp()),
        "exp": int((now + dt.timedelta(minutes=minutes)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})


def generate_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
