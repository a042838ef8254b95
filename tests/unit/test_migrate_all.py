"""`python -m bmt_common.migrate_all`, the chart's migrations Job: which databases the environment
names, where each service's migrations are found (without importing the service), the messages
and exit codes of what goes wrong, and that the .sql files are package data of the install.
The last test migrates a scratch database of the local stack's PostgreSQL."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import asyncpg
import pytest

from bmt_common import migrate_all
from bmt_common.migrate_all import SetupError, Target, databases, migrations_of, run
from bmt_stack.config import PROJECT_ROOT

SERVICES_DIR = PROJECT_ROOT / "services"
OWNERS = ("mail", "order", "payment", "product", "showtime", "user")
URL = "postgresql://bmt:{password}@10.233.0.1:55432/bmt_{service}"


def chart_env(password: str = "s3cret") -> dict[str, str]:  # noqa: S107
    """What the Job's container sees once Kubernetes has expanded $(BMT_POSTGRES_PASSWORD)."""
    env = {"BMT_POSTGRES_PASSWORD": password, "BMT_LOG_LEVEL": "INFO", "PATH": "/usr/bin"}
    for service in OWNERS:
        env[f"BMT_DATABASE_URL_{service.upper()}"] = URL.format(password=password, service=service)
    return env


# --- the environment --------------------------------------------------------------------------


def test_every_database_url_of_the_job_is_a_target() -> None:
    found = databases(chart_env())
    assert list(found) == sorted(OWNERS)
    assert found["user"] == "postgresql://bmt:s3cret@10.233.0.1:55432/bmt_user"


def test_other_variables_are_ignored() -> None:
    env = {"BMT_DATABASE_URL": "postgresql://x@h/d", "BMT_DATABASE_URL_USER": URL, "HOME": "/"}
    assert list(databases(env)) == ["user"]


def test_an_unexpanded_password_reference_is_filled_in_url_quoted() -> None:
    env = {
        "BMT_POSTGRES_PASSWORD": "p@ss/w:rd",
        "BMT_DATABASE_URL_ORDER": "postgresql://bmt:$(BMT_POSTGRES_PASSWORD)@db:5432/bmt_order",
    }
    assert databases(env) == {"order": "postgresql://bmt:p%40ss%2Fw%3Ard@db:5432/bmt_order"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PATH": "/usr/bin"}, "no BMT_DATABASE_URL_<SERVICE> variable is set"),
        ({"BMT_DATABASE_URL_USER": ""}, "BMT_DATABASE_URL_USER is empty"),
        ({"BMT_DATABASE_URL_": "postgresql://h/d"}, "not a service name"),
        ({"BMT_DATABASE_URL_USER": "mysql://h/d"}, "is not a postgresql://"),
        ({"BMT_DATABASE_URL_USER": "postgresql://h:port/d"}, "the port is not a number"),
        (
            {"BMT_DATABASE_URL_USER": "postgresql://bmt:$(BMT_POSTGRES_PASSWORD)@h/d"},
            "refers to $(BMT_POSTGRES_PASSWORD), which is not set",
        ),
    ],
    ids=["none", "empty", "no-service", "not-postgres", "bad-port", "no-password"],
)
def test_a_wrong_environment_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SetupError, match=re.escape(message)):
        databases(env)


# --- the migrations folders -------------------------------------------------------------------


@pytest.mark.parametrize("service", OWNERS)
def test_each_owner_s_migrations_are_found_by_package_name(service: str) -> None:
    assert migrations_of(service) == SERVICES_DIR / f"bmt_{service}" / "migrations"


def test_the_lookup_does_not_import_the_service() -> None:
    probe = (
        "import sys\n"
        "from bmt_common.migrate_all import migrations_of\n"
        "migrations_of('payment')\n"
        "print('bmt_payment' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_service_without_a_package_or_migrations_is_named() -> None:
    with pytest.raises(SetupError, match="package bmt_nosuch is not installed"):
        migrations_of("nosuch")
    # bmt_gateway is a package but owns no database.
    with pytest.raises(SetupError, match="bmt_gateway has no migrations"):
        migrations_of("gateway")


def test_the_sql_files_are_package_data_of_a_regular_install() -> None:
    """The Dockerfile runs `pip install .`: every migration must match pyproject's package-data
    for its package, or the image's Job and services find no migrations."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["*"]
    scripts = sorted(SERVICES_DIR.glob("bmt_*/migrations/*.sql"))
    assert {p.parent.parent.name for p in scripts} >= {f"bmt_{s}" for s in OWNERS} | {"bmt_common"}
    for script in scripts:
        inside = script.relative_to(script.parent.parent).as_posix()
        assert any(fnmatch.fnmatch(inside, pattern) for pattern in patterns), inside


# --- the run: messages and exit codes ---------------------------------------------------------


async def test_setup_errors_exit_2_before_any_database_is_touched(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(target: Target) -> list[str]:
        raise AssertionError(f"{target.service} was touched")

    monkeypatch.setattr(migrate_all, "_migrate", never)
    env = {**chart_env(), "BMT_DATABASE_URL_NOSUCH": "postgresql://h/d"}
    assert await run(env) == 2
    assert "migrate_all: nosuch: package bmt_nosuch is not installed" in capsys.readouterr().err


async def test_one_line_a_database_and_exit_1_when_one_fails(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake(target: Target) -> list[str]:
        if target.service == "order":
            raise ConnectionRefusedError(111, "Connect call failed")
        if target.service == "user":
            return ["bmt_common/001_outbox.sql", "bmt_user/001_init.sql"]
        return []

    monkeypatch.setattr(migrate_all, "_migrate", fake)
    assert await run(chart_env()) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == len(OWNERS) - 1
    assert (
        "user: 10.233.0.1:55432/bmt_user: applied bmt_common/001_outbox.sql, bmt_user/001_init.sql"
        in lines
    )
    assert "mail: 10.233.0.1:55432/bmt_mail: up to date" in lines
    assert "order: 10.233.0.1:55432/bmt_order: FAILED:" in err
    assert "1 of 6 databases failed: order" in err
    assert "s3cret" not in out + err  # no credentials in the Job's log


async def test_a_failing_migration_is_reported_with_postgres_s_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake(target: Target) -> list[str]:
        raise asyncpg.exceptions.UndefinedTableError('relation "seats" does not exist')

    monkeypatch.setattr(migrate_all, "_migrate", fake)
    assert await run({"BMT_DATABASE_URL_ORDER": URL.format(password="p", service="order")}) == 1
    assert 'order: 10.233.0.1:55432/bmt_order: FAILED: relation "seats" does not exist' in (
        capsys.readouterr().err
    )


def test_the_module_runs_as_the_job_s_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bmt_common.migrate_all"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin"},
        cwd=Path("/"),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "no BMT_DATABASE_URL_<SERVICE> variable is set" in result.stderr


# --- a real database --------------------------------------------------------------------------


@pytest.mark.stack
async def test_a_scratch_database_is_migrated_once(
    postgres_dsn: str, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"bmt_test_{unique}"
    admin = await asyncpg.connect(postgres_dsn.format(database="postgres"))
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        env = {"BMT_DATABASE_URL_SHOWTIME": postgres_dsn.format(database=name)}
        assert await run(env) == 0
        assert await run(env) == 0
        first, again = capsys.readouterr().out.splitlines()
        assert first.startswith("showtime: 127.0.0.1:")
        assert first.endswith(": applied bmt_common/001_outbox.sql, bmt_showtime/001_init.sql")
        assert again.endswith(f"/{name}: up to date")
        conn = await asyncpg.connect(env["BMT_DATABASE_URL_SHOWTIME"])
        try:
            applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        finally:
            await conn.close()
        assert applied == {"bmt_common/001_outbox.sql", "bmt_showtime/001_init.sql"}
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()
