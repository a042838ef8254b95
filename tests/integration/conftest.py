"""Repository tests: each gets a scratch database with the service's migrations applied."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from bmt_common.db import migrate, migration_folders

Scratch = Callable[[Path], AbstractAsyncContextManager[asyncpg.Connection]]


@pytest.fixture
def scratch_database(postgres_dsn: str, unique: str) -> Scratch:
    @asynccontextmanager
    async def make(migrations: Path) -> AsyncIterator[asyncpg.Connection]:
        name = f"bmt_test_{unique}"
        admin = await asyncpg.connect(postgres_dsn.format(database="postgres"))
        await admin.execute(f"CREATE DATABASE {name}")
        conn = await asyncpg.connect(postgres_dsn.format(database=name))
        try:
            await migrate(conn, migration_folders(migrations))
            yield conn
        finally:
            await conn.close()
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
            await admin.close()

    return make
