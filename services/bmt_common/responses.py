"""A handler's JSON answer: one pydantic model, or a list of them, as `application/json`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel


def json_response(model: BaseModel | list[Any], status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        text = model.model_dump_json()
    else:
        text = json.dumps(
            [m.model_dump(mode="json") if isinstance(m, BaseModel) else m for m in model]
        )
    return web.Response(text=text, status=status, content_type="application/json")
