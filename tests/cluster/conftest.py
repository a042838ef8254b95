"""The cluster suite runs against BMT installed by its chart into the local cluster (`bmt cluster
up`): the same fixtures as the other suites, pointed at the cluster's gateway. It runs last and
hands the platform back to the host's processes when it is done."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from bmt_stack import cli
from bmt_stack.config import StackSettings
from kube import Kube


@pytest.fixture(scope="session")
def bmt_platform(settings: StackSettings, figure: Callable[[str], None]) -> Iterator[StackSettings]:
    started = time.monotonic()
    assert cli.cluster_up(settings) == 0, "bmt cluster up failed"
    figure(
        f"[cluster] bmt cluster up (stack, node, images, helm install): "
        f"{time.monotonic() - started:.0f}s"
    )
    yield settings
    assert cli.platform_up(settings) == 0, "the host's platform did not come back"


@pytest.fixture(scope="session")
def gateway(bmt_platform: StackSettings) -> str:
    return bmt_platform.cluster_gateway


@pytest.fixture(scope="session")
def kube(bmt_platform: StackSettings) -> Kube:
    return Kube(bmt_platform)
