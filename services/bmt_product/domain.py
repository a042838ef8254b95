"""Films, FAB and media: the catalogue's rules and shapes, free of I/O."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from bmt_common.fields import Strict

GENRES = (
    "action",
    "adventure",
    "animation",
    "biopic",
    "comedy",
    "crime",
    "dark_comedy",
    "documentary",
    "drama",
    "family",
    "fantasy",
    "historical",
    "horror",
    "musical",
    "mystery",
    "noir",
    "psychological_thriller",
    "romance",
    "sci_fi",
    "slasher",
    "sports",
    "superhero",
    "thriller",
    "war",
    "western",
)
AGE_RATINGS = ("P", "K", "T13", "T16", "T18")
FabKind = Literal["food", "beverage"]
Slot = Literal["poster", "trailer", "image"]

# Media kinds by their first bytes (the client's content type is not trusted).
IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}
VIDEO_TYPES = {"video/mp4": ".mp4", "video/webm": ".webm"}


def sniff(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def media_key(owner: str, owner_id: int, slot: Slot, extension: str) -> str:
    """`films/12/poster-<uuid>.jpg`: the upload service reads owner, id and slot back from it."""
    return f"{owner}s/{owner_id}/{slot}-{uuid.uuid4().hex}{extension}"


def _genres(value: object) -> object:
    # Multipart forms send "action,drama" or the field repeated; JSON sends a list.
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    return value


def _known_genres(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(GENRES))
    if unknown:
        raise ValueError(f"unknown genres {unknown}; known: {', '.join(GENRES)}")
    return sorted(set(value))


Genres = Annotated[
    list[str], BeforeValidator(_genres), AfterValidator(_known_genres), Field(max_length=10)
]
AgeRating = Literal["P", "K", "T13", "T16", "T18"]
Title = Annotated[str, Field(min_length=1, max_length=200)]


class FilmForm(Strict):
    title: Title
    description: str = Field(default="", max_length=5000)
    release_date: dt.date
    duration_minutes: int = Field(ge=1, le=600)
    genres: Genres = Field(default_factory=list)
    age_rating: AgeRating


class FilmPatch(Strict):
    title: Title | None = None
    description: str | None = Field(default=None, max_length=5000)
    release_date: dt.date | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=600)
    genres: Genres | None = None
    age_rating: AgeRating | None = None


class FabForm(Strict):
    name: str = Field(min_length=1, max_length=100)
    kind: FabKind
    price: int = Field(ge=0, le=100_000_000, description="In the smallest currency unit")


class FabPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    kind: FabKind | None = None
    price: int | None = Field(default=None, ge=0, le=100_000_000)


class MediaSource(Strict):
    """Where a medium is now: a URL to fetch, or an object of the media bucket to copy."""

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    object_key: str | None = Field(default=None, min_length=1, max_length=1000)

    def source(self) -> str:
        if (self.url is None) == (self.object_key is None):
            raise ValueError("give exactly one of url and object_key")
        return self.url or f"s3:{self.object_key}"


class FilmImport(FilmForm):
    """A managed film (the operator's Film resource): fields plus where its media are."""

    poster: MediaSource | None = None
    trailer: MediaSource | None = None


class Film(BaseModel):
    id: int
    title: str
    description: str
    release_date: dt.date
    duration_minutes: int
    genres: list[str]
    age_rating: str
    poster_url: str | None
    trailer_url: str | None
    media_status: Literal["pending", "ready"]


class Fab(BaseModel):
    id: int
    name: str
    kind: FabKind
    price: int
    image_url: str | None


class FilmList(BaseModel):
    items: list[Film]


class FabList(BaseModel):
    items: list[Fab]
