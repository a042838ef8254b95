"""Fixtures for the operator tests: kubectl against the real API server, a namespace each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bmt_stack.config import StackSettings
from kube import Kube


@pytest.fixture(scope="session")
def kube(bmt_platform: StackSettings) -> Kube:
    return Kube(bmt_platform)


@pytest.fixture
def namespace(kube: Kube, unique: str) -> Iterator[str]:
    name = f"op-{unique}"
    kube.run("create", "namespace", name)
    yield name
    # Retained rows stay in the services, as a Retain policy promises; the objects go.
    kube.run("delete", "namespace", name, "--wait=false")
