"""Access tokens: what the verifier accepts and what it refuses."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import jwt
import pytest

from bmt_common.auth import JwtVerifier, TokenError
from bmt_user import domain


@pytest.fixture(scope="module")
def key() -> domain.SigningKey:
    return domain.SigningKey.from_pem(domain.generate_pem())


def verifier(key: domain.SigningKey) -> JwtVerifier:
    return JwtVerifier(None, issuer="bmt-user", audience="bmt", keys={key.kid: key.public_key()})


def token(key: domain.SigningKey, age: dt.timedelta = dt.timedelta(0), **overrides: object) -> str:
    # The clock is read per token: the suite may run this module long after it is collected.
    claims = {
        "user_id": 7,
        "email": "a@b.co",
        "role": "customer",
        "session_id": uuid.uuid4(),
        "issuer": "bmt-user",
        "audience": "bmt",
        "minutes": 10,
        "now": dt.datetime.now(dt.UTC) - age,
    }
    claims.update(overrides)
    return domain.access_token(key, **claims)  # type: ignore[arg-type]


async def test_a_valid_token_gives_its_claims(key: domain.SigningKey) -> None:
    claims = await verifier(key).verify(token(key))
    assert (claims.sub, claims.role, claims.email) == ("7", "customer", "a@b.co")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"age": dt.timedelta(minutes=11)}, "it has expired"),
        ({"audience": "someone-else"}, "it is meant for another audience"),
        ({"issuer": "mallory"}, "it was issued by someone else"),
    ],
)
async def test_claims_are_checked(
    key: domain.SigningKey, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(TokenError, match=reason):
        await verifier(key).verify(token(key, **overrides))


async def test_alg_none_is_refused(key: domain.SigningKey) -> None:
    _, payload, _ = token(key).split(".")
    forged_header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "kid": key.kid}).encode()
    ).rstrip(b"=")
    with pytest.raises(TokenError, match="algorithm 'none' is not accepted"):
        await verifier(key).verify(f"{forged_header.decode()}.{payload}.")


async def test_an_hmac_token_signed_with_the_public_key_is_refused(key: domain.SigningKey) -> None:
    # The classic confusion attack: HS256 keyed with the published public key.
    public = key.jwk()["x"]
    forged = jwt.encode(
        {"sub": "1", "role": "admin"}, public, algorithm="HS256", headers={"kid": key.kid}
    )
    with pytest.raises(TokenError, match="algorithm 'HS256' is not accepted"):
        await verifier(key).verify(forged)


async def test_a_token_of_another_key_is_refused(key: domain.SigningKey) -> None:
    other = domain.SigningKey.from_pem(domain.generate_pem())
    forged = token(other)
    with pytest.raises(TokenError, match="unknown key"):
        await verifier(key).verify(forged)
    # Same key id, other key: the signature gives it away.
    impostor = domain.SigningKey(other.private, key.kid)
    with pytest.raises(TokenError, match="signature does not verify"):
        await verifier(key).verify(token(impostor))


async def test_garbage_is_not_a_token(key: domain.SigningKey) -> None:
    with pytest.raises(TokenError, match="not a JWT"):
        await verifier(key).verify("definitely.not.a-token")


async def test_a_token_of_an_ended_session_is_refused_even_once_verified(
    key: domain.SigningKey,
) -> None:
    session = uuid.uuid4()
    ended: set[str] = set()
    checker = JwtVerifier(
        None, issuer="bmt-user", audience="bmt", keys={key.kid: key.public_key()}, revoked=ended
    )
    issued = token(key, session_id=session)
    assert (await checker.verify(issued)).sid == str(session)  # now in the verified cache
    ended.add(str(session))
    with pytest.raises(TokenError, match="its session has ended"):
        await checker.verify(issued)
    assert (await checker.verify(token(key))).sid != str(session)  # other sessions go on
