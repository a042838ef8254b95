"""Multipart forms with media files: streamed to a spooled file, size-capped, type-sniffed."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Literal, TypeVar
from urllib.parse import parse_qsl

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import BadHttpMessage
from pydantic import BaseModel, ValidationError

from bmt_common.inputs import read_body, refuse_nul
from bmt_common.problems import Problem, from_validation
from bmt_product.domain import IMAGE_TYPES, VIDEO_TYPES, sniff

M = TypeVar("M", bound=BaseModel)
MediaKind = Literal["image", "video"]
CHUNK = 256 * 1024
MAX_FIELD_BYTES = 16 * 1024
# A film's form has ten fields: more parts than this is abuse, answered before it costs much.
MAX_PARTS = 32
MAX_URLENCODED_BYTES = 64 * 1024


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
        # A form without files may come URL-encoded (small: it holds text only).
        raw = await read_body(request, MAX_URLENCODED_BYTES, "form")
        try:
            pairs = parse_qsl(
                raw.decode("ascii"),
                keep_blank_values=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=MAX_PARTS,
            )
        except UnicodeDecodeError:
            raise Problem(400, "The form is not URL-encoded UTF-8") from None
        except ValueError:
            raise Problem(413, f"The form has more than {MAX_PARTS} fields") from None
        joined: dict[str, list[str]] = {}
        for name, value in pairs:
            joined.setdefault(name, []).append(value)
        return {name: ",".join(values) for name, values in joined.items()}, {}
    if not request.content_type.startswith("multipart/form-data"):
        raise Problem(415, f"The body must be multipart/form-data, not {request.content_type!r}")
    fields: dict[str, list[str]] = {}
    staged: dict[str, StagedFile] = {}
    try:
        reader = await request.multipart()
        return await _read_parts(reader, files, limits, fields, staged)
    except BaseException as exc:
        for file in staged.values():
            file.file.close()
        unreadable = (ValueError, BadHttpMessage, web.RequestPayloadError, ConnectionResetError)
        if isinstance(exc, unreadable):
            raise Problem(
                400, f"The multipart body cannot be read: {_why(exc)}", close=True
            ) from None
        raise


def _why(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "a text field is not UTF-8"
    if isinstance(exc, ConnectionResetError) or str(exc) == "Reading after EOF":
        return "it ends before its closing boundary"
    return str(exc)


async def _read_parts(
    reader: MultipartReader,
    files: dict[str, MediaKind],
    limits: dict[MediaKind, int],
    fields: dict[str, list[str]],
    staged: dict[str, StagedFile],
) -> tuple[dict[str, str], dict[str, StagedFile]]:
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_PARTS:
            raise Problem(413, f"The form has more than {MAX_PARTS} parts", close=True)
        if not isinstance(part, BodyPartReader):
            raise Problem(400, "Nested multipart bodies are not accepted")
        if not part.name:
            raise Problem(400, "Each part needs a Content-Disposition header with a name")
        if part.filename is None:
            raw = await part.read_chunk(MAX_FIELD_BYTES + 1)
            if len(raw) > MAX_FIELD_BYTES or not part.at_eof():
                raise Problem(
                    413, f"Field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes", close=True
                )
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
            raise Problem(413, f"{name} is larger than the limit of {_mib(limit)}", close=True)
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
    refuse_nul(fields, "form")
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise from_validation(exc, "form") from None
