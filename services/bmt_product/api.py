"""The product service's routes: films and FAB, read by anyone, written by admins with media."""

from __future__ import annotations

import logging

import aiohttp
import asyncpg
from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, Field
from yarl import URL

from bmt_common import aws
from bmt_common.db import POOL
from bmt_common.inputs import body_of, path_id, query_of
from bmt_common.problems import Problem, not_found
from bmt_common.responses import json_response
from bmt_common.routes import Api
from bmt_product import domain
from bmt_product import repository as repo
from bmt_product.domain import (
    Fab,
    FabForm,
    FabList,
    FabPatch,
    Film,
    FilmForm,
    FilmImport,
    FilmList,
    FilmPatch,
    MediaSource,
)
from bmt_product.settings import ProductSettings
from bmt_product.uploads import MediaKind, StagedFile, read_form, stage, validate

log = logging.getLogger(__name__)
api = Api("BMT product service", "Films, food and drinks (FAB), and their media.")
SETTINGS = web.AppKey("settings", ProductSettings)

FILM_FILES: dict[str, MediaKind] = {"poster": "image", "trailer": "video"}
FAB_FILES: dict[str, MediaKind] = {"image": "image"}


class Page(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=2**62)


def _film(row: asyncpg.Record) -> Film:
    ready = row["poster_url"] is not None and row["trailer_url"] is not None
    return Film.model_validate({**dict(row), "media_status": "ready" if ready else "pending"})


def _fab(row: asyncpg.Record) -> Fab:
    return Fab.model_validate(dict(row))


def _limits(settings: ProductSettings) -> dict[MediaKind, int]:
    return {"image": settings.max_image_bytes, "video": settings.max_video_bytes}


async def _store(
    settings: ProductSettings, owner: str, owner_id: int, files: dict[str, StagedFile]
) -> dict[str, str]:
    """Put the files into the media bucket; returns their keys by field name."""
    keys = {
        name: domain.media_key(owner, owner_id, name, staged.extension)  # type: ignore[arg-type]
        for name, staged in files.items()
    }
    try:
        async with aws.client(settings, "s3") as s3:
            for name, staged in files.items():
                await s3.upload_fileobj(
                    staged.file,
                    settings.media_bucket,
                    keys[name],
                    ExtraArgs={"ContentType": staged.content_type},
                )
    except (BotoCoreError, ClientError) as exc:
        log.error("media upload failed: %s", exc)
        raise Problem(503, "The media store is unavailable; nothing was saved") from None
    finally:
        _discard(files)
    return keys


def _discard(files: dict[str, StagedFile]) -> None:
    for staged in files.values():
        staged.file.close()


@api.route(
    "POST",
    "/v1/films",
    summary="Add a film with its poster and trailer",
    tag="films",
    auth="admin",
    form=FilmForm,
    files={"poster": "JPEG, PNG or WebP", "trailer": "MP4 or WebM"},
    response=Film,
    status=201,
    errors=(413, 503),
)
async def add_film(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    fields, files = await read_form(request, FILM_FILES, _limits(settings))
    form = validate(FilmForm, fields)
    async with request.app[POOL].acquire() as conn:
        film_id = await repo.next_film_id(conn)
    # The upload runs with no connection held: a slow store must not starve the pool.
    keys = await _store(settings, "film", film_id, files)
    async with request.app[POOL].acquire() as conn:
        await repo.insert_film(
            conn,
            film_id,
            title=form.title,
            description=form.description,
            release_date=form.release_date,
            duration_minutes=form.duration_minutes,
            genres=form.genres,
            age_rating=form.age_rating,
            poster_key=keys.get("poster"),
            trailer_key=keys.get("trailer"),
        )
        row = await repo.film(conn, film_id)
    assert row is not None
    return json_response(_film(row), 201)


@api.route(
    "PATCH",
    "/v1/films/{id}",
    summary="Change a film; new media replace the old",
    tag="films",
    auth="admin",
    form=FilmPatch,
    files={"poster": "JPEG, PNG or WebP", "trailer": "MP4 or WebM"},
    response=Film,
    errors=(404, 413, 503),
)
async def update_film(request: web.Request) -> web.Response:
    settings, film_id = request.app[SETTINGS], path_id(request)
    fields, files = await read_form(request, FILM_FILES, _limits(settings))
    patch = validate(FilmPatch, fields)
    async with request.app[POOL].acquire() as conn:
        exists = await repo.film(conn, film_id) is not None
    if not exists:
        _discard(files)
        raise not_found(f"Film {film_id}")
    keys = await _store(settings, "film", film_id, files)
    async with request.app[POOL].acquire() as conn:
        await repo.update_film(
            conn,
            film_id,
            **patch.model_dump(exclude_none=True),
            poster_key=keys.get("poster"),
            trailer_key=keys.get("trailer"),
        )
        row = await repo.film(conn, film_id)
    if row is None:
        raise not_found(f"Film {film_id}")
    return json_response(_film(row))


async def _import(
    request: web.Request, name: str, source: MediaSource, kind: MediaKind
) -> StagedFile:
    """Fetch a managed film's medium from its URL, or read it from the media bucket."""
    settings = request.app[SETTINGS]
    limit = _limits(settings)[kind]
    if source.url is not None:
        host = URL(source.url).host or ""
        if host not in settings.media_import_hosts:
            raise Problem(
                422,
                f"{name}: media are not fetched from {host!r}; allowed hosts: "
                f"{', '.join(settings.media_import_hosts)}",
            )
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
                http.get(source.url) as response,
            ):
                if response.status != 200:
                    raise Problem(422, f"{name}: {source.url} answered {response.status}")
                return await stage(response.content.iter_chunked(256 * 1024), name, kind, limit)
        except aiohttp.ClientError as exc:
            raise Problem(422, f"{name}: {source.url} cannot be fetched: {exc}") from None
    try:
        async with aws.client(settings, "s3") as s3:
            got = await s3.get_object(Bucket=settings.media_bucket, Key=source.object_key)
            body = got["Body"]
            try:
                return await stage(body.iter_chunks(256 * 1024), name, kind, limit)
            finally:
                body.close()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise Problem(
                422, f"{name}: object {source.object_key!r} is not in {settings.media_bucket}"
            ) from None
        raise Problem(503, "The media store is unavailable; nothing was saved") from None


@api.route(
    "PUT",
    "/v1/films/by-key/{key}",
    summary="Create or update a managed film by external key",
    tag="films",
    auth="admin",
    body=FilmImport,
    response=Film,
    errors=(413, 415, 503),
)
async def put_film(request: web.Request) -> web.Response:
    spec, key = body_of(request, FilmImport), request.match_info["key"]
    sources = {
        name: media.source()
        for name, media in (("poster", spec.poster), ("trailer", spec.trailer))
        if media is not None
    }
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"film:{key}")
        row = await repo.film_by_key(conn, key)
        film_id = row["id"] if row else await repo.next_film_id(conn)
        if row is None:
            await repo.insert_film_by_key(conn, film_id, key)
        # Only media whose source changed are imported again.
        changed = {
            name: source
            for name, source in sources.items()
            if row is None or row[f"{name}_source"] != source
        }
    # Fetched and stored with no connection held (another service's URL, then S3).
    staged = {
        name: await _import(request, name, getattr(spec, name), FILM_FILES[name])
        for name in changed
    }
    keys = await _store(request.app[SETTINGS], "film", film_id, staged)
    async with request.app[POOL].acquire() as conn:
        async with conn.transaction():
            await repo.update_film(
                conn,
                film_id,
                title=spec.title,
                description=spec.description,
                release_date=spec.release_date,
                duration_minutes=spec.duration_minutes,
                genres=spec.genres,
                age_rating=spec.age_rating,
                poster_key=keys.get("poster"),
                trailer_key=keys.get("trailer"),
            )
            await repo.set_sources(conn, film_id, changed.get("poster"), changed.get("trailer"))
        found = await repo.film(conn, film_id)
    assert found is not None
    return json_response(_film(found))


@api.route(
    "GET",
    "/v1/films/by-key/{key}",
    summary="Read a managed film by external key",
    tag="films",
    response=Film,
    errors=(404,),
)
async def read_film_by_key(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn:
        row = await repo.film_by_key(conn, key)
        found = await repo.film(conn, row["id"]) if row else None
    if found is None:
        raise not_found(f"Film {key!r}")
    return json_response(_film(found))


@api.route(
    "DELETE",
    "/v1/films/by-key/{key}",
    summary="Withdraw a managed film (kept for old orders)",
    tag="films",
    auth="admin",
    status=204,
    errors=(404,),
)
async def delete_film_by_key(request: web.Request) -> web.Response:
    key = request.match_info["key"]
    async with request.app[POOL].acquire() as conn:
        if not await repo.delete_film_by_key(conn, key):
            raise not_found(f"Film {key!r}")
    return web.Response(status=204)


@api.route("GET", "/v1/films", summary="List films", tag="films", query=Page, response=FilmList)
async def list_films(request: web.Request) -> web.Response:
    page = query_of(request, Page)
    async with request.app[POOL].acquire() as conn:
        rows = await repo.films(conn, page.limit, page.offset)
    return json_response(FilmList(items=[_film(r) for r in rows]))


@api.route(
    "GET", "/v1/films/{id}", summary="Read a film", tag="films", response=Film, errors=(404,)
)
async def read_film(request: web.Request) -> web.Response:
    film_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.film(conn, film_id)
    if row is None:
        raise not_found(f"Film {film_id}")
    return json_response(_film(row))


@api.route(
    "POST",
    "/v1/fabs",
    summary="Add a food or drink with its image",
    tag="fabs",
    auth="admin",
    form=FabForm,
    files={"image": "JPEG, PNG or WebP"},
    response=Fab,
    status=201,
    errors=(413, 503),
)
async def add_fab(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    fields, files = await read_form(request, FAB_FILES, _limits(settings))
    form = validate(FabForm, fields)
    async with request.app[POOL].acquire() as conn:
        fab_id = await repo.next_fab_id(conn)
    keys = await _store(settings, "fab", fab_id, files)
    async with request.app[POOL].acquire() as conn:
        await repo.insert_fab(conn, fab_id, form.name, form.kind, form.price, keys.get("image"))
        row = await repo.fab(conn, fab_id)
    assert row is not None
    return json_response(_fab(row), 201)


@api.route(
    "PATCH",
    "/v1/fabs/{id}",
    summary="Change a food or drink",
    tag="fabs",
    auth="admin",
    form=FabPatch,
    files={"image": "JPEG, PNG or WebP"},
    response=Fab,
    errors=(404, 413, 503),
)
async def update_fab(request: web.Request) -> web.Response:
    settings, fab_id = request.app[SETTINGS], path_id(request)
    fields, files = await read_form(request, FAB_FILES, _limits(settings))
    patch = validate(FabPatch, fields)
    async with request.app[POOL].acquire() as conn:
        exists = await repo.fab(conn, fab_id) is not None
    if not exists:
        _discard(files)
        raise not_found(f"Food or drink {fab_id}")
    keys = await _store(settings, "fab", fab_id, files)
    async with request.app[POOL].acquire() as conn:
        await repo.update_fab(
            conn, fab_id, **patch.model_dump(exclude_none=True), image_key=keys.get("image")
        )
        row = await repo.fab(conn, fab_id)
    if row is None:
        raise not_found(f"Food or drink {fab_id}")
    return json_response(_fab(row))


@api.route(
    "DELETE",
    "/v1/fabs/{id}",
    summary="Withdraw a food or drink",
    tag="fabs",
    auth="admin",
    status=204,
    errors=(404,),
)
async def delete_fab(request: web.Request) -> web.Response:
    fab_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        if not await repo.delete_fab(conn, fab_id):
            raise not_found(f"Food or drink {fab_id}")
    return web.Response(status=204)


@api.route("GET", "/v1/fabs", summary="List food and drinks", tag="fabs", response=FabList)
async def list_fabs(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        rows = await repo.fabs(conn)
    return json_response(FabList(items=[_fab(r) for r in rows]))


@api.route(
    "GET", "/v1/fabs/{id}", summary="Read a food or drink", tag="fabs", response=Fab, errors=(404,)
)
async def read_fab(request: web.Request) -> web.Response:
    fab_id = path_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await repo.fab(conn, fab_id)
    if row is None:
        raise not_found(f"Food or drink {fab_id}")
    return json_response(_fab(row))
