"""Shared fixtures: every test runs against the real local stack, brought up if needed."""

from __future__ import annotations

import uuid

import pytest

from bmt_stack import cli
from bmt_stack.config import HOST, StackSettings


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
