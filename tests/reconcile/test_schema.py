"""Bad resources are refused by the API server itself, with a message naming the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from crs import cinema, film, showtime
from kube import Kube


def changed(resource: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with `spec.a.b` set (or removed when value is ...)."""
    result = copy.deepcopy(resource)
    node: Any = result
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return result


C, F, S = cinema("c", "x"), film("f", "x"), showtime("s", "x", "2030-01-01T10:00:00+07:00")
PLATFORM = {
    "apiVersion": "bmt.dev/v1alpha1",
    "kind": "Platform",
    "metadata": {"name": "p", "namespace": "x"},
    "spec": {"media": {"bucket": "bmt-media-test"}},
}
COUPLE_ROW = {"label": "D", "seats": 5, "seatType": "couple", "price": 1}

CASES = [
    (changed(C, "spec.name", ...), "spec.name: Required value"),
    (changed(C, "spec.halls", []), "spec.halls: Invalid value"),
    (changed(C, "spec.halls.0.rows.0.seats", 0), "spec.halls[0].rows[0].seats"),
    (changed(C, "spec.halls.0.rows.0.seats", 61), "spec.halls[0].rows[0].seats"),
    (changed(C, "spec.halls.0.rows.0.price", -1), "spec.halls[0].rows[0].price"),
    (changed(C, "spec.halls.0.rows.0.label", "a1"), "spec.halls[0].rows[0].label"),
    (changed(C, "spec.halls.0.rows.0.seatType", "sofa"), "spec.halls[0].rows[0].seatType"),
    (changed(C, "spec.halls.0.rows", [COUPLE_ROW]), "couple row has an even number of seats"),
    (
        changed(C, "spec.halls.0.blocked", ["Z1"]),
        "every blocked seat must be in one of the hall's rows",
    ),
    (
        changed(C, "spec.halls", [C["spec"]["halls"][0], C["spec"]["halls"][0]]),
        "spec.halls[1]: Duplicate value",
    ),
    (changed(C, "spec.deletionPolicy", "Keep"), "spec.deletionPolicy: Unsupported value"),
    (changed(F, "spec.title", ...), "spec.title: Required value"),
    (changed(F, "spec.durationMinutes", 0), "spec.durationMinutes"),
    (changed(F, "spec.durationMinutes", "long"), "spec.durationMinutes: Invalid value"),
    (changed(F, "spec.ageRating", "R"), "spec.ageRating: Unsupported value"),
    (changed(F, "spec.releaseDate", "next friday"), "spec.releaseDate"),
    (changed(F, "spec.genres", ["telenovela"]), "spec.genres[0]: Unsupported value"),
    (changed(F, "spec.poster", {}), "give exactly one of url and objectKey"),
    (
        changed(F, "spec.poster", {"url": "http://a/p.png", "objectKey": "k"}),
        "give exactly one of url and objectKey",
    ),
    (changed(F, "spec.trailer", {"url": "ftp://host/t.mp4"}), "url must be http or https"),
    (changed(S, "spec.filmRef", ...), "spec.filmRef: Required value"),
    (changed(S, "spec.startsAt", "tomorrow evening"), "spec.startsAt"),
    (changed(S, "spec.released", "yes"), "spec.released: Invalid value"),
    (changed(PLATFORM, "spec.media.bucket", "Not_A_Bucket"), "spec.media.bucket"),
    (changed(PLATFORM, "spec.media.maxReceives", 0), "spec.media.maxReceives"),
    (
        changed(PLATFORM, "spec.media.deadLetterQueue", "bmt-media-uploads"),
        "the dead-letter queue must differ",
    ),
]


@pytest.mark.parametrize(("resource", "message"), CASES)
def test_a_bad_resource_is_refused(
    kube: Kube, namespace: str, resource: dict[str, Any], message: str
) -> None:
    resource = copy.deepcopy(resource)
    resource["metadata"]["namespace"] = namespace
    result = kube.apply(resource, check=False, server_only=True)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    kind = resource["kind"].lower()
    assert kube.get(kind, resource["metadata"]["name"], namespace) is None


async def test_a_released_showtime_keeps_its_hall_and_time(kube: Kube, namespace: str) -> None:
    resource = showtime("fixed", namespace, "2030-01-01T10:00:00+07:00", released=True)
    kube.apply(resource)
    moved = changed(resource, "spec.startsAt", "2030-01-01T12:00:00+07:00")
    result = kube.apply(moved, check=False)
    assert result.returncode != 0
    assert "a released showtime keeps its film, cinema, hall and start time" in result.stderr
    unreleased = changed(resource, "spec.released", False)
    result = kube.apply(unreleased, check=False)
    assert "a released showtime cannot be unreleased" in result.stderr
