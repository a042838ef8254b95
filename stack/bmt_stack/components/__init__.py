"""The components of the local stack, in start order."""

from __future__ import annotations

from bmt_stack.components.base import Component
from bmt_stack.components.kafka import Connect, Kafka
from bmt_stack.components.kube import ApiServer, ControllerManager, Etcd, Tools
from bmt_stack.components.moto import Moto
from bmt_stack.components.postgres import Postgres
from bmt_stack.config import StackSettings

__all__ = ["Component", "Tools", "all_components"]


def all_components(settings: StackSettings) -> list[Component]:
    kinds: list[type[Component]] = [
        Postgres,
        Kafka,
        Moto,
        Etcd,
        Connect,
        ApiServer,
        ControllerManager,
    ]
    return [kind(settings) for kind in kinds]
