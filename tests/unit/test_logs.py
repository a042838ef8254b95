"""Log lines: one JSON object each, with the request id and the extras that are data."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from bmt_common.logs import JsonFormatter, request_id


@dataclass
class Settings:
    big: str = "x" * 4000


def line(**extra: object) -> dict[str, object]:
    record = logging.makeLogRecord(
        {"name": "kopf.objects", "levelno": logging.INFO, "levelname": "INFO", "msg": "%s done"}
    )
    record.args = ("showtime",)
    record.__dict__.update(extra)
    parsed: dict[str, object] = json.loads(JsonFormatter("operator").format(record))
    return parsed


def test_a_line_carries_the_message_the_service_and_the_request_id() -> None:
    token = request_id.set("rid-1")
    try:
        entry = line()
    finally:
        request_id.reset(token)
    assert (entry["msg"], entry["service"], entry["level"], entry["request_id"]) == (
        "showtime done",
        "operator",
        "info",
        "rid-1",
    )


def test_extras_that_are_data_are_kept_and_objects_are_not() -> None:
    entry = line(k8s_ref={"kind": "Film", "name": "mai"}, ms=1.5, settings=Settings())
    assert entry["k8s_ref"] == {"kind": "Film", "name": "mai"}
    assert entry["ms"] == 1.5
    assert "settings" not in entry
