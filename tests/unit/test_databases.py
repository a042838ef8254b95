"""One list of the services' databases: the stack runs a service per database of that list."""

from __future__ import annotations

from bmt_common.events import DATABASES
from bmt_stack.components.services import SPECS


def test_every_database_has_its_service_and_no_service_another() -> None:
    owned = [spec.database for spec in SPECS if spec.database]
    assert sorted(owned) == sorted(DATABASES)
