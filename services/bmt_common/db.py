"""PostgreSQL for a service: the asyncpg pool as a cleanup context and numbered migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeAlias

import asyncpg
from aiohttp import web
from asyncpg.pool import PoolConnectionProxy

from bmt_common.health import READY_CHECKS

log = logging.getLogger(__name__)

# A connection of its own or one lent by the pool: repositories accept both.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

POOL = web.AppKey("pool", asyncpg.Pool)
COMMON_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same for every replica of every service.
_MIGRATION_LOCK = 7_406_111


async def migrate(conn: asyncpg.Connection, folders: Sequence[Path]) -> list[str]:
    """Apply the `NNN_name.sql` files of `folders` not applied yet, each in its own transaction.

    An advisory lock lets several replicas start at once; `schema_migrations` names each file by
    folder and file name, so the shared library's migrations and the service's never collide.
    """
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for folder in folders:
            for script in sorted(folder.glob("[0-9][0-9][0-9]_*.sql")):
                name = f"{folder.parent.name}/{script.name}"
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(script.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                log.info("applied migration %s", name)
                applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


def migration_folders(service_migrations: Path) -> list[Path]:
    return [COMMON_MIGRATIONS, service_migrations]


def postgres_ctx(
    dsn: str, migrations: Path, pool_size: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context: migrate, open the pool, close it on shutdown."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn, migration_folders(migrations))
        finally:
            await conn.close()
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        app[POOL] = pool

        async def database() -> str | None:
            try:
                await pool.fetchval("SELECT 1")
            except (OSError, asyncpg.PostgresError) as exc:
                return f"database unreachable: {exc}"
            return None

        app[READY_CHECKS].append(database)
        try:
            yield
        finally:
            await pool.close()

    return ctx
