"""Access-token verification, the same in every service: EdDSA only, keys from the user
service's JWKS, `exp`, `iss` and `aud` required and checked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container
from typing import Any

import aiohttp
import jwt
from pydantic import BaseModel, ValidationError

ALGORITHMS = ["EdDSA"]
REFETCH_AFTER = 10.0  # seconds between two JWKS fetches caused by an unknown key id
VERIFIED_CACHE = 10_000  # tokens kept verified in memory


class TokenError(Exception):
    """Why a token was refused, in words fit for the client."""


class Claims(BaseModel):
    sub: str
    email: str
    role: str
    sid: str
    exp: int


class JwtVerifier:
    def __init__(
        self,
        jwks_url: str | None,
        *,
        issuer: str,
        audience: str,
        keys: dict[str, Any] | None = None,
        revoked: Container[str] | None = None,
    ) -> None:
        self.jwks_url = jwks_url
        # Session ids ended before their tokens expire (the gateway follows them).
        self.revoked = revoked
        self.issuer = issuer
        self.audience = audience
        self._keys: dict[str, Any] = dict(keys or {})
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._http: aiohttp.ClientSession | None = None
        self._verified: dict[str, Claims] = {}

    async def verify(self, token: str) -> Claims:
        """The token's claims; a token verified before is answered from memory until it expires
        (the same bytes always verify the same way), unless its session has ended since."""
        claims = self._verified.get(token)
        if claims is None or claims.exp <= time.time():
            claims = await self._verify(token)
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()  # crude, bounded, and rare: tokens live ten minutes
            self._verified[token] = claims
        if self.revoked is not None and claims.sid in self.revoked:
            raise TokenError("its session has ended")
        return claims

    async def _verify(self, token: str) -> Claims:
        if not token.isascii():  # a JWT is base64url and dots; PyJWT fails on other bytes
            raise TokenError("it is not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("it is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise TokenError(f"algorithm {header.get('alg')!r} is not accepted")
        key = await self._key(str(header.get("kid", "")))
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("it has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("it is meant for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("it was issued by someone else") from None
        except jwt.InvalidSignatureError:
            raise TokenError("its signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from None
        try:
            return Claims.model_validate(payload)
        except ValidationError:
            raise TokenError("it lacks BMT's claims") from None

    async def _key(self, kid: str) -> Any:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and time.monotonic() - self._fetched_at > REFETCH_AFTER:
                await self._fetch()
        if kid not in self._keys:
            raise TokenError("it is signed with an unknown key")
        return self._keys[kid]

    async def _fetch(self) -> None:
        if self.jwks_url is None:
            return
        self._fetched_at = time.monotonic()
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        try:
            async with self._http.get(self.jwks_url) as response:
                response.raise_for_status()
                document = await response.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._fetched_at = 0.0  # a failed fetch does not count: the next request tries again
            raise TokenError(f"the signing keys cannot be fetched ({exc})") from None
        for jwk in document.get("keys", []):
            if jwk.get("alg") in ALGORITHMS and "kid" in jwk:
                self._keys[jwk["kid"]] = jwt.PyJWK(jwk).key

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
