"""RFC 9457 problem details: every error of every service is `application/problem+json`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise anywhere in a handler; the middleware turns it into a problem+json response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.type = type_
        self.errors = errors
        self.headers = headers or {}
        # The body was left unread or broken: the connection cannot carry another request.
        self.close = close
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        from http import HTTPStatus

        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title or HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> web.Response:
        response = web.Response(
            status=self.status,
            text=json.dumps(self.body(instance)),
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )
        if self.close:
            response.force_close()
        return response


def from_validation(exc: ValidationError, where: str = "body") -> Problem:
    errors = [
        {
            "field": ".".join(str(part) for part in error["loc"]) or where,
            "message": _message(error),
        }
        for error in exc.errors(include_url=False)
    ]
    # The detail is what a client shows a person: each field with its reason, not the field alone.
    shown = "; ".join(
        f"it {e['message']}" if e["field"] == where else f"{e['field']}: {e['message']}"
        for e in errors[:_SHOWN]
    )
    if len(errors) > _SHOWN:
        shown += f" (and {len(errors) - _SHOWN} more)"
    return Problem(422, f"The {where} is invalid: {shown}", errors=errors)


_SHOWN = 3
# pydantic's wording where it names our classes or its own internals.
_PLAIN = {
    "model_type": "should be an object",
    "dict_type": "should be an object",
    "model_attributes_type": "should be an object",
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
}


def _message(error: ErrorDetails) -> str:
    plain = _PLAIN.get(error["type"])
    if plain is not None:
        return plain
    # A validator's ValueError reads "Value error, <our message>".
    return str(error["msg"]).removeprefix("Value error, ")


def not_found(what: str) -> Problem:
    return Problem(404, f"{what} was not found")


def conflict(detail: str, **extra: Any) -> Problem:
    return Problem(409, detail, **extra)
