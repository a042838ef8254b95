"""The route table: who may call each route and what it takes and gives, checked per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bmt_common.bearer import authenticate
from bmt_common.inputs import read_json, refuse_nul
from bmt_common.problems import Problem, from_validation

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Who may call: None (anyone), "user" (any signed-in account), or a role; admins pass every check.
ROLES = ("customer", "staff", "admin")


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: str | None = None
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    files: dict[str, str] = field(default_factory=dict)
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()


class Api:
    """A service's route table. Each route says who may call it and what it takes and gives;
    the same declaration checks requests and writes `/openapi.json`."""

    def __init__(self, title: str, description: str = "", version: str = "1.0.0") -> None:
        self.title = title
        self.description = description
        self.version = version
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        auth: str | None = None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        form: type[BaseModel] | None = None,
        files: dict[str, str] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        assert auth in (None, "user", *ROLES), auth

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    auth,
                    body,
                    query,
                    form,
                    files or {},
                    response,
                    status,
                    errors,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        """Adds every route, each behind its checks; `create_app` adds the document beside them."""
        for op in self.operations:
            app.router.add_route(op.method, op.path, _checked(op))


def _checked(op: Operation) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if any("\x00" in value for value in request.match_info.values()):
            raise Problem(400, "The path must not contain the NUL character (%00)")
        if op.auth is not None:
            request["claims"] = await authenticate(request, op.auth)
        if op.body is not None:
            request["body"] = await read_json(request, op.body)
        if op.query is not None:
            query = dict(request.query)
            refuse_nul(query, "query")
            try:
                request["query"] = op.query.model_validate(query)
            except ValidationError as exc:
                raise from_validation(exc, "query") from None
        return await op.handler(request)

    return handler
