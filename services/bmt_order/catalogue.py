"""FAB names and prices, read from the product service and kept for a short while."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from bmt_common.problems import Problem

TTL = 30.0  # seconds: a price change reaches new orders within half a minute


@dataclass(frozen=True)
class FabPrice:
    fab_id: int
    name: str
    price: int


class Catalogue:
    def __init__(self, http: aiohttp.ClientSession, product_url: str) -> None:
        self.http = http
        self.product_url = product_url
        self._cache: dict[int, tuple[float, FabPrice | None]] = {}

    async def fabs(self, fab_ids: list[int]) -> dict[int, FabPrice]:
        found = await asyncio.gather(*(self._fab(i) for i in fab_ids))
        missing = [i for i, fab in zip(fab_ids, found, strict=True) if fab is None]
        if missing:
            raise Problem(
                422,
                f"Food or drink {', '.join(map(str, missing))} is not on sale",
                errors=[{"field": "fabs", "message": f"unknown fab_id {i}"} for i in missing],
            )
        return {fab.fab_id: fab for fab in found if fab is not None}

    async def _fab(self, fab_id: int) -> FabPrice | None:
        cached = self._cache.get(fab_id)
        if cached and time.monotonic() - cached[0] < TTL:
            return cached[1]
        try:
            async with self.http.get(f"{self.product_url}/v1/fabs/{fab_id}") as response:
                if response.status == 404:
                    fab = None
                else:
                    response.raise_for_status()
                    body = await response.json()
                    fab = FabPrice(fab_id, body["name"], body["price"])
        except (aiohttp.ClientError, TimeoutError):
            raise Problem(503, "The food and drinks catalogue is unavailable; try again") from None
        self._cache[fab_id] = (time.monotonic(), fab)
        return fab
