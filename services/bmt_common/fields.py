"""Field types every service's request models share."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# A row id: a positive PostgreSQL bigint (a larger number is refused with 422, not a 500).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
