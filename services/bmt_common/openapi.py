"""Writes a service's OpenAPI 3.1 document from its route table and pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from bmt_common.problems import PROBLEM_JSON
from bmt_common.routes import Api, Operation

REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"RFC 9457 problem details ({PROBLEM_JSON})",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    components.setdefault("Problem", problem_schema())
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer"} if name.endswith("id") else {"type": "string"},
        }
        for name in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        for name, info in op.query.model_fields.items():
            schema = op.query.model_json_schema()["properties"][name]
            parameters.append(
                {"name": name, "in": "query", "required": info.is_required(), "schema": schema}
            )
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": op.handler.__name__,
        "parameters": parameters,
        "responses": {},
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(op.body, components)}},
        }
    if op.form is not None or op.files:
        form: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        if op.form is not None:
            schema = op.form.model_json_schema(ref_template=REF)
            components.update(schema.pop("$defs", {}))
            form["properties"].update(schema.get("properties", {}))
            form["required"].extend(schema.get("required", []))
        for name, description in op.files.items():
            form["properties"][name] = {
                "type": "string",
                "format": "binary",
                "description": description,
            }
        doc["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": form}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _schema(op.response, components)}}
    doc["responses"][str(op.status)] = ok
    statuses = set(op.errors)
    if op.body is not None or op.query is not None or op.form is not None:
        statuses |= {400, 415, 422}
    if op.body is not None or op.form is not None:
        statuses.add(413)  # over the JSON cap, or a file over its limit
    if "{" in op.path:
        statuses.add(400)  # a NUL character in a path parameter
    if op.auth is not None:
        doc["security"] = [{"bearer": []}]
        doc["x-bmt-auth"] = op.auth
        statuses |= {401, 403}
    statuses |= {429, 500}
    for status in sorted(statuses):
        doc["responses"][str(status)] = {"description": "Problem", "content": problem}
    return doc


def build(api: Api) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for op in api.operations:
        path = _PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version, "description": api.description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
