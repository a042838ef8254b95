"""Builders of BMT custom resources for the operator tests."""

from __future__ import annotations

from typing import Any


def cinema(name: str, namespace: str, policy: str = "Retain", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bmt.dev/v1alpha1",
        "kind": "Cinema",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "name": f"Cinema {name}",
            "city": "Da Nang",
            "address": "1 Bach Dang",
            "deletionPolicy": policy,
            "halls": [{"name": "H1", "rows": [{"label": "A", "seats": 6, "price": 75000}]}],
            **spec,
        },
    }


def film(name: str, namespace: str, policy: str = "Retain", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bmt.dev/v1alpha1",
        "kind": "Film",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "title": f"Film {name}",
            "durationMinutes": 90,
            "releaseDate": "2026-12-01",
            "ageRating": "P",
            "deletionPolicy": policy,
            "poster": {"objectKey": "examples/poster.png"},
            "trailer": {"objectKey": "examples/trailer.mp4"},
            **spec,
        },
    }


def showtime(
    name: str, namespace: str, starts_at: str, policy: str = "Retain", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "bmt.dev/v1alpha1",
        "kind": "Showtime",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "filmRef": "f1",
            "cinemaRef": "c1",
            "hall": "H1",
            "startsAt": starts_at,
            "released": True,
            "deletionPolicy": policy,
            **spec,
        },
    }
