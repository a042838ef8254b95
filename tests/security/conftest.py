"""Fixtures of the security suites (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import aiohttp
import pytest
from security.scene import Scene, build_scene

from bmt_stack.config import HOST, StackSettings
from support import Client


@pytest.fixture
def sandbox(bmt_platform: StackSettings) -> str:
    return f"http://{HOST}:{bmt_platform.port_sandbox}"


@pytest.fixture
async def scene(
    http: aiohttp.ClientSession,
    bmt_platform: StackSettings,
    admin: Client,
    sandbox: str,
    unique: str,
) -> Scene:
    return await build_scene(http, bmt_platform, admin, sandbox, unique)
