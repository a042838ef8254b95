"""Schemathesis hooks (SCHEMATHESIS_HOOKS=security.st_hooks): each request comes from a client
address of its own, so that the local gateway's rate limits never stand in for an answer."""

from __future__ import annotations

from typing import Any

import schemathesis
from security.scene import any_address


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: dict[str, Any]) -> None:
    case.headers = {**(case.headers or {}), "X-Forwarded-For": any_address()}
