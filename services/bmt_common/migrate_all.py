"""`python -m bmt_common.migrate_all`: apply every service's migrations, then exit.

Run by the Helm chart's pre-install/pre-upgrade Job (helm/bmt/templates/migrations-job.yaml), so a
bad migration fails the release before any pod rolls. The services migrate at start-up too; both
use `bmt_common.db.migrate`, which is idempotent and takes an advisory lock.

The databases are the environment's `BMT_DATABASE_URL_<SERVICE>` variables, one per service that
owns a database (`BMT_DATABASE_URL_USER` is the user service's). The Job writes the password into
each URL as `$(BMT_POSTGRES_PASSWORD)`, which Kubernetes expands; a reference left unexpanded (a
run outside Kubernetes) is filled in here from `BMT_POSTGRES_PASSWORD`, URL-quoted.

Each service's `migrations/` folder is found as package data of `bmt_<service>` with
`importlib.util.find_spec`, which locates a package without importing it: the shared library never
imports a service (the import-linter contracts of pyproject.toml).

One line per database on stdout; exit 0 when every database is migrated, 1 when one failed (the
others are still tried), 2 when the environment or the installed packages are wrong.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg

from bmt_common.db import migrate, migration_folders

PREFIX = "BMT_DATABASE_URL_"
PASSWORD_VAR = "BMT_POSTGRES_PASSWORD"  # noqa: S105 (the variable's name, not a password)
PASSWORD_REF = f"$({PASSWORD_VAR})"
CONNECT_TIMEOUT_SECONDS = 30.0
_SERVICE = re.compile(r"^[a-z][a-z0-9_]*$")


class SetupError(Exception):
    """The environment or the installed packages cannot be migrated: nothing was tried."""


@dataclass(frozen=True)
class Target:
    service: str
    dsn: str
    migrations: Path

    @property
    def where(self) -> str:
        """The database without its credentials: host:port/name."""
        url = urlsplit(self.dsn)
        return f"{url.hostname}:{url.port or 5432}{url.path}"


def databases(environ: Mapping[str, str]) -> dict[str, str]:
    """Service -> DSN, from the `BMT_DATABASE_URL_<SERVICE>` variables, sorted by service."""
    found: dict[str, str] = {}
    for key in sorted(environ):
        if not key.startswith(PREFIX):
            continue
        service, dsn = key.removeprefix(PREFIX).lower(), environ[key]
        if not _SERVICE.match(service):
            raise SetupError(f"{key}: not a service name after {PREFIX}")
        if not dsn:
            raise SetupError(f"{key} is empty")
        if PASSWORD_REF in dsn:
            password = environ.get(PASSWORD_VAR)
            if password is None:
                raise SetupError(f"{key} refers to $({PASSWORD_VAR}), which is not set")
            dsn = dsn.replace(PASSWORD_REF, quote(password, safe=""))
        url = urlsplit(dsn)
        try:
            url.port  # noqa: B018 (a port that is not a number raises here, not mid-run)
        except ValueError:
            raise SetupError(f"{key}: the port is not a number") from None
        if url.scheme not in ("postgres", "postgresql") or not url.hostname:
            raise SetupError(f"{key} is not a postgresql://<host>/<database> URL")
        found[service] = dsn
    if not found:
        raise SetupError(f"no {PREFIX}<SERVICE> variable is set: nothing to migrate")
    return found


def migrations_of(service: str) -> Path:
    """The `migrations/` folder of package `bmt_<service>`, located without importing it."""
    package = f"bmt_{service}"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"{service}: package {package} is not installed")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "migrations"
        if any(folder.glob("[0-9][0-9][0-9]_*.sql")):
            return folder
    raise SetupError(
        f"{service}: {package} has no migrations/NNN_*.sql (not installed as package data?)"
    )


def targets(environ: Mapping[str, str]) -> list[Target]:
    """Every database and its migrations; any setup error before a database is touched."""
    return [
        Target(service, dsn, migrations_of(service)) for service, dsn in databases(environ).items()
    ]


async def _migrate(target: Target) -> list[str]:
    conn = await asyncpg.connect(target.dsn, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        return await migrate(conn, migration_folders(target.migrations))
    finally:
        await conn.close()


async def run(environ: Mapping[str, str]) -> int:
    try:
        chosen = targets(environ)
    except SetupError as exc:
        print(f"migrate_all: {exc}", file=sys.stderr, flush=True)
        return 2
    failed = []
    for target in chosen:
        try:
            applied = await _migrate(target)
        except (
            OSError,
            TimeoutError,
            ValueError,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ) as exc:
            failed.append(target.service)
            reason = str(exc).strip() or type(exc).__name__
            print(
                f"{target.service}: {target.where}: FAILED: {reason}", file=sys.stderr, flush=True
            )
            continue
        done = f"applied {', '.join(applied)}" if applied else "up to date"
        print(f"{target.service}: {target.where}: {done}", flush=True)
    if failed:
        print(
            f"migrate_all: {len(failed)} of {len(chosen)} databases failed: {', '.join(failed)}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


def main() -> int:
    return asyncio.run(run(os.environ))


if __name__ == "__main__":
    sys.exit(main())
