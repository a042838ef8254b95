"""The routing table, learned from each service's OpenAPI document."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_PARAM = re.compile(r"\\{(\w+)\\}")


@dataclass(frozen=True)
class Route:
    service: str
    method: str
    template: str
    pattern: re.Pattern[str]
    auth: str | None


def compile_template(template: str) -> re.Pattern[str]:
    return re.compile("^" + _PARAM.sub(r"[^/]+", re.escape(template)) + "$")


def routes_of(service: str, document: dict[str, Any]) -> list[Route]:
    routes = []
    for template, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            routes.append(
                Route(
                    service,
                    method.upper(),
                    template,
                    compile_template(template),
                    operation.get("x-bmt-auth"),
                )
            )
    return routes


class Table:
    """All routes of all services; literal paths win over templated ones."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}
        self._routes: list[Route] = []

    def update(self, service: str, document: dict[str, Any]) -> None:
        self.documents[service] = document
        routes = [r for name, doc in self.documents.items() for r in routes_of(name, doc)]
        # "/v1/films/new" before "/v1/films/{id}": fewer parameters first.
        self._routes = sorted(routes, key=lambda r: (r.template.count("{"), -len(r.template)))

    def match(self, method: str, path: str) -> tuple[Route | None, list[str]]:
        """The route for method and path, else None and the methods the path allows."""
        allowed: list[str] = []
        for route in self._routes:
            if route.pattern.match(path):
                if route.method == method:
                    return route, []
                allowed.append(route.method)
        return None, sorted(set(allowed))
