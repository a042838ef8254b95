"""Field types and the strict base model every service's request models share."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A row id: a positive PostgreSQL bigint (a larger number is refused with 422, not a 500).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Strict(BaseModel):
    """A request body or query: an unknown field is refused (422), never silently dropped."""

    model_config = ConfigDict(extra="forbid")
