"""`python -m bmt_common.migrate_all`: apply every service's migrations, then exit.

Run by the Helm chart's pre-install/pre-upgrade Job, so a new release finds its schema ready
before any pod starts (the services migrate at start-up too; both are idempotent and take an
advisory lock). Each database's URL comes from `BMT_DATABASE_URL_<SERVICE>`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from importlib import resources
from pathlib import Path

import asyncpg

from bmt_common.db import migrate, migration_folders

SERVICES = ("user", "mail", "product", "showtime", "order", "payment")


def migrations_of(service: str) -> Path:
    # Found as package data by name: the library never imports a service.
    return Path(str(resources.files(f"bmt_{service}") / "migrations"))


async def main() -> int:
    missing = [s for s in SERVICES if not os.environ.get(f"BMT_DATABASE_URL_{s.upper()}")]
    if missing:
        print(f"missing BMT_DATABASE_URL_ for: {', '.join(missing)}", file=sys.stderr)
        return 2
    for service in SERVICES:
        conn = await asyncpg.connect(os.environ[f"BMT_DATABASE_URL_{service.upper()}"])
        try:
            applied = await migrate(conn, migration_folders(migrations_of(service)))
        finally:
            await conn.close()
        print(f"{service}: {len(applied)} migrations applied", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
