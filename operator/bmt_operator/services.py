"""The operator's client of the owning services: every write goes through their APIs with an
admin's access token, addressed by external key (`<namespace>.<name>`)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bmt_operator.settings import OperatorSettings


class Unavailable(Exception):
    """A service could not be reached or failed: try again later."""


class Refused(Exception):
    """A service refused the request (4xx): the spec must change first."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Services:
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._http: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_until = 0.0
        # One login at a time: at start-up hundreds of handlers need a token at once, and a login
        # each (argon2 on the user service) starved the operator's own lease renewals.
        self._login_lock = asyncio.Lock()

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _login(self) -> str:
        if self._token and time.monotonic() < self._token_until:
            return self._token
        async with self._login_lock:
            if self._token and time.monotonic() < self._token_until:
                return self._token  # another handler signed in meanwhile
            return await self._sign_in()

    async def _sign_in(self) -> str:
        body = await self._send(
            "POST",
            f"{self.settings.user_url}/v1/auth/login",
            token=None,
            json={
                "email": self.settings.operator_email,
                "password": self.settings.operator_password.get_secret_value(),
            },
        )
        self._token = str(body["access_token"])
        # Renew a minute before the token would expire.
        self._token_until = time.monotonic() + float(body["expires_in"]) - 60
        return self._token

    async def _send(self, method: str, url: str, *, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.http.request(method, url, headers=headers, **kwargs) as response:
                if response.status == 204:
                    return None
                body = await response.json(content_type=None)
                if response.status >= 500:
                    raise Unavailable(f"{method} {url}: {response.status} {body.get('detail')}")
                if response.status >= 400:
                    raise Refused(response.status, str(body.get("detail", body)))
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"{method} {url}: {exc or type(exc).__name__}") from None

    async def call(self, method: str, url: str, **kwargs: Any) -> Any:
        return await self._send(method, url, token=await self._login(), **kwargs)

    # Cinemas (showtime service)
    async def put_cinema(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self.call(
            "PUT", f"{self.settings.showtime_url}/v1/cinemas/by-key/{key}", json=body
        )
        return found

    async def delete_cinema(self, key: str) -> None:
        try:
            await self.call("DELETE", f"{self.settings.showtime_url}/v1/cinemas/by-key/{key}")
        except Refused as exc:
            if exc.status != 404:
                raise

    # Films (product service)
    async def put_film(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self.call(
            "PUT", f"{self.settings.product_url}/v1/films/by-key/{key}", json=body
        )
        return found

    async def film(self, key: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self.call(
                "GET", f"{self.settings.product_url}/v1/films/by-key/{key}"
            )
            return found
        except Refused as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_film(self, key: str) -> None:
        try:
            await self.call("DELETE", f"{self.settings.product_url}/v1/films/by-key/{key}")
        except Refused as exc:
            if exc.status != 404:
                raise

    # Showtimes (showtime service) and their seats (order service)
    async def put_showtime(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = await self.call(
            "PUT", f"{self.settings.showtime_url}/v1/showtimes/by-key/{key}", json=body
        )
        return found

    async def delete_showtime(self, key: str) -> None:
        try:
            await self.call("DELETE", f"{self.settings.showtime_url}/v1/showtimes/by-key/{key}")
        except Refused as exc:
            if exc.status != 404:
                raise

    async def seat_counts(self, showtime_id: int) -> dict[str, int] | None:
        """Available, held and sold seats; None until the order service has the showtime."""
        try:
            body = await self._send(
                "GET", f"{self.settings.order_url}/v1/showtimes/{showtime_id}/seats", token=None
            )
        except Refused as exc:
            if exc.status == 404:
                return None
            raise
        return {k: int(body[k]) for k in ("available", "held", "sold")}
