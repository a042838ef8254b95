"""Shared fixtures: every test runs against the real local stack, brought up if needed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import pytest

from bmt_stack import cli
from bmt_stack.components.services import ADMIN_EMAIL, Secrets
from bmt_stack.config import HOST, StackSettings
from support import Client, Mailbox

# What the suites measured, shown after the results of every run (not only with -s).
FIGURES: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault suite kills components: it runs after the others, so no other suite runs
    beside a restart. The cluster suite takes the platform over from the host's processes: it
    runs last of all."""

    def order(item: pytest.Item) -> int:
        path = str(item.path)
        return 2 if "/tests/cluster/" in path else 1 if "/tests/chaos/" in path else 0

    items.sort(key=order)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures measured by this run")
        for text in FIGURES:
            terminalreporter.write_line(text)


@pytest.fixture(scope="session")
def figure() -> Callable[[str], None]:
    """Records a figure for the run's summary (and prints it for -s runs)."""

    def record(text: str) -> None:
        print(text)
        FIGURES.append(text.strip("\n"))

    return record


@pytest.fixture(scope="session")
def settings() -> StackSettings:
    return StackSettings()


@pytest.fixture(scope="session")
def stack(settings: StackSettings) -> StackSettings:
    """The running stack; `up` is a no-op when `make test` already brought it up."""
    assert cli.up(settings, only=None, tools=True) == 0, "the local stack did not come up"
    return settings


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: StackSettings) -> str:
    return f"{HOST}:{stack.port_kafka}"


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests never share topics, groups, buckets or databases."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def postgres_dsn(stack: StackSettings) -> str:
    """DSN template of the application role; format with the database name."""
    password = stack.postgres_password.get_secret_value()
    return f"postgresql://bmt:{password}@{HOST}:{stack.port_postgres}/{{database}}"


@pytest.fixture(scope="session")
def connect_url(stack: StackSettings) -> str:
    return f"http://{HOST}:{stack.port_connect}"


@pytest.fixture(scope="session")
def aws_endpoint(stack: StackSettings) -> str:
    return f"http://{HOST}:{stack.port_moto}"


# The whole platform, reached through the gateway.
@pytest.fixture(scope="session")
def bmt_platform(settings: StackSettings) -> StackSettings:
    assert cli.platform_up(settings) == 0, "the local platform did not come up"
    return settings


@pytest.fixture(scope="session")
def gateway(bmt_platform: StackSettings) -> str:
    return f"http://{HOST}:{bmt_platform.port_gateway}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(http: aiohttp.ClientSession, gateway: str) -> Client:
    return Client(http, gateway)


@pytest.fixture
def new_client(http: aiohttp.ClientSession, gateway: str) -> Callable[[], Client]:
    return lambda: Client(http, gateway)


@pytest.fixture
async def admin(new_client: Callable[[], Client], bmt_platform: StackSettings) -> Client:
    who = new_client()
    password = Secrets(bmt_platform).admin_password()
    status, body = await who.call(
        "POST", "/v1/auth/login", json={"email": ADMIN_EMAIL, "password": password}
    )
    assert status == 200, body
    who.token = body["access_token"]
    return who


@pytest.fixture
def db(bmt_platform: StackSettings) -> Callable[[str], Awaitable[asyncpg.Connection]]:
    password = bmt_platform.postgres_password.get_secret_value()

    async def connect(database: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            f"postgresql://bmt:{password}@{HOST}:{bmt_platform.port_postgres}/{database}"
        )

    return connect


@pytest.fixture
def mailbox(http: aiohttp.ClientSession, bmt_platform: StackSettings) -> Mailbox:
    return Mailbox(http, f"http://{HOST}:{bmt_platform.port_moto}")


@pytest.fixture
def email(unique: str) -> str:
    return f"client-{unique}@example.com"


@pytest.fixture
def make_user(
    admin: Client, new_client: Callable[[], Client], unique: str
) -> Callable[..., Awaitable[Client]]:
    """A signed-in client with a fresh account of the given role (created by the admin)."""
    counter = iter(range(10_000))

    async def make(role: str = "customer") -> Client:
        who = new_client()
        email = f"{role}-{unique}-{next(counter)}@example.com"
        password = "a long enough password"
        status, body = await admin.call(
            "POST",
            "/v1/users",
            json={"email": email, "password": password, "name": role, "role": role},
        )
        assert status == 201, body
        status, tokens = await who.call(
            "POST", "/v1/auth/login", json={"email": email, "password": password}
        )
        assert status == 200, tokens
        who.token = tokens["access_token"]
        return who

    return make
