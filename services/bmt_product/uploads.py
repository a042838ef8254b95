"""Multipart forms with media files: streamed to a spooled file, size-capped, type-sniffed."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Literal, TypeVar

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel, ValidationError

from bmt_common.problems import Problem, from_validation
from bmt_product.domain import IMAGE_TYPES, VIDEO_TYPES, sniff

M = TypeVar("M", bound=BaseModel)
MediaKind = Literal["image", "video"]
CHUNK = 256 * 1024
MAX_FIELD_BYTES = 16 * 1024


@dataclass
class StagedFile:
    file: IO[bytes]
    size: int
    content_type: str
    extension: str


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:g} MiB"


async def read_form(
    request: web.Request, files: dict[str, MediaKind], limits: dict[MediaKind, int]
) -> tuple[dict[str, str], dict[str, StagedFile]]:
    """Text fields (a repeated field joined by commas) and the declared files, checked."""
    if request.content_type == "application/x-www-form-urlencoded":
        # A form without files may come URL-encoded.
        form = await request.post()
        return {name: ",".join(str(v) for v in form.getall(name)) for name in set(form)}, {}
    if not request.content_type.startswith("multipart/form-data"):
        raise Problem(415, f"The body must be multipart/form-data, not {request.content_type!r}")
    fields: dict[str, list[str]] = {}
    staged: dict[str, StagedFile] = {}
    try:
        reader = await request.multipart()
        return await _read_parts(reader, files, limits, fields, staged)
    except (ValueError, BadHttpMessage) as exc:
        for file in staged.values():
            file.file.close()
        raise Problem(400, f"The multipart body cannot be read: {exc}") from None


async def _read_parts(
    reader: MultipartReader,
    files: dict[str, MediaKind],
    limits: dict[MediaKind, int],
    fields: dict[str, list[str]],
    staged: dict[str, StagedFile],
) -> tuple[dict[str, str], dict[str, StagedFile]]:
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            raise Problem(400, "Nested multipart bodies are not accepted")
        if part.filename is None:
            raw = await part.read_chunk(MAX_FIELD_BYTES + 1)
            if len(raw) > MAX_FIELD_BYTES or not part.at_eof():
                raise Problem(413, f"Field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes")
            fields.setdefault(part.name, []).append(raw.decode("utf-8", errors="strict"))
            continue
        kind = files.get(part.name)
        if kind is None:
            raise Problem(422, f"Unexpected file field {part.name!r}; expected {sorted(files)}")
        staged[part.name] = await _stage(part, part.name, kind, limits[kind])
    return {name: ",".join(values) for name, values in fields.items()}, staged


async def _stage(part: BodyPartReader, name: str, kind: MediaKind, limit: int) -> StagedFile:
    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk

    return await stage(chunks(), name, kind, limit)


async def stage(chunks: AsyncIterator[bytes], name: str, kind: MediaKind, limit: int) -> StagedFile:
    """Spool a stream to a temporary file, refusing it past `limit` or when its first bytes
    are not an accepted media type."""
    spooled = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    size, head = 0, b""
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            spooled.close()
            raise Problem(413, f"{name} is larger than the limit of {_mib(limit)}")
        if len(head) < 16:
            head += chunk[: 16 - len(head)]
        spooled.write(chunk)
    allowed = IMAGE_TYPES if kind == "image" else VIDEO_TYPES
    content_type = sniff(head)
    if size == 0 or content_type not in allowed:
        spooled.close()
        raise Problem(415, f"{name} must be one of {', '.join(allowed)} (judged by its content)")
    spooled.seek(0)
    return StagedFile(spooled, size, content_type, allowed[content_type])


def validate(model: type[M], fields: dict[str, str]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise from_validation(exc, "form") from None
