"""Answers with whole records (``/api/v1/records``, ``/api/v1/search``): every field of the
library's ``ImageRecord``, and search hits with their per-space scores.

The contract's ``/api/v1/images`` routes answer with its ``image_info`` subset; these answer
with everything (exact tag scores, hashes, timestamps), which is what ``imgctx.connect()``
needs to return the same records and hits as a local ``Extractor``. Search by text, by an
uploaded image (never stored), or by a stored image's id.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from imgctx import DEFAULT_THRESHOLD, InvalidImageError, normalise_objects
from imgctx.server.errors import UploadTooLargeError
from imgctx.server.filters import photo_filters
from imgctx.server.record_schemas import CountResponse, HitOut, MatchOut, RecordOut, RecordPage
from imgctx.server.routes.images import CHUNK
from imgctx.server.schemas import PATH_LIMITS, ErrorResponse
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/records", tags=["records"])
search_router = APIRouter(prefix="/api/v1/search", tags=["search"])

OBJECTS = Query(None, max_length=2000, description="Comma-separated objects, any of them", examples=["cat,dog"])


@router.get("", response_model=RecordPage)
async def list_records(
    objects: str | None = OBJECTS,
    limit: int = Query(100, ge=0, le=1000),
    offset: int = Query(0, ge=0, le=2**31),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> RecordPage:
    """Records in insertion order, optionally only those tagged with any of ``objects`` and
    passing the photo filters."""
    wanted = normalise_objects(objects)
    ex = state.extractor

    def work() -> RecordPage:
        records = ex.list(objects=wanted, limit=limit, offset=offset, **filters)
        return RecordPage(records=[RecordOut.of(r) for r in records], total=ex.count(objects=wanted, **filters),
                          limit=limit, offset=offset)

    return await state.run(work)


@router.get("/count", response_model=CountResponse)
async def count_records(objects: str | None = OBJECTS, filters: dict[str, Any] = Depends(photo_filters),
                        state: AppState = Depends(get_state)) -> CountResponse:
    """How many records there are, optionally only those tagged with any of ``objects`` and
    passing the photo filters."""
    wanted = normalise_objects(objects)
    return CountResponse(count=await state.run(state.extractor.count, objects=wanted, **filters), objects=wanted)


@router.get("/by-path", response_model=RecordOut | None)
async def get_record_by_path(
    path: str = Query(..., **PATH_LIMITS, description="A file inside an allowed root", examples=["photos/cat.jpg"]),
    state: AppState = Depends(get_state),
) -> RecordOut | None:
    """The record of the file at ``path`` (relative paths start at the first allowed root), or
    null when that file is not indexed (``Extractor.get_by_path``)."""
    record = await state.run(state.extractor.get_by_path, state.guard.resolve(path, "path"))
    return RecordOut.of(record) if record is not None else None


@router.get("/duplicates-of", response_model=list[MatchOut])
async def check_image_records(
    image_path: str = Query(..., **PATH_LIMITS, description="An image file inside an allowed root"),
    similarity_threshold: float = Query(DEFAULT_THRESHOLD, ge=0.0, le=1.0),
    limit: int = Query(50, ge=0, le=1000),
    state: AppState = Depends(get_state),
) -> list[MatchOut]:
    """Stored images that duplicate one image file, most similar first (``Extractor.check_image``):
    whole records, each with every metric of its comparison."""
    image = state.guard.resolve(image_path, "image_path")
    matches = await state.run(state.extractor.check_image, image, threshold=similarity_threshold, limit=limit)
    return [MatchOut.of(m) for m in matches]


@router.get("/{record_id}", response_model=RecordOut)
async def get_record(record_id: str, state: AppState = Depends(get_state)) -> RecordOut:
    """The record with this id (404 ``RecordNotFoundError`` if there is none)."""
    return RecordOut.of(await state.run(state.extractor.get, record_id))


# -- search ---------------------------------------------------------------------------------------

#: The path of the upload route, for the app's upload-size middleware.
UPLOAD_PATH = "/api/v1/search/upload"
OBJECTS_HELP = "Comma-separated objects, any of them"
OFFSET_HELP = "Skip this many of the best hits (the next page)"


@search_router.get("", response_model=list[HitOut])
async def search_images(
    query: str = Query(..., max_length=2000, description="What to look for", examples=["a red car at night"]),
    objects: str | None = Query(None, max_length=2000, description=OBJECTS_HELP, examples=["cat,dog"]),
    limit: int = Query(10, ge=0, le=1000),
    min_score: float | None = Query(None, ge=0.0, le=1.0, description="Drop hits scoring below this"),
    offset: int = Query(0, ge=0, le=100_000, description=OFFSET_HELP),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> list[HitOut]:
    """Images that match a text query, best first (``Extractor.search``), with its photo filters."""
    hits = await state.run(state.extractor.search, query, objects=normalise_objects(objects), limit=limit + offset,
                           min_score=min_score, **filters)
    return [HitOut.of(h) for h in hits[offset:]]


async def _spool(file: UploadFile, limit: int) -> tuple[Path, str]:
    """The upload in a temporary file (at most ``limit`` bytes) and its SHA-256."""
    digest = hashlib.sha256()
    size = 0
    fd, name = tempfile.mkstemp(prefix="imgctx-query-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(f"upload is over the {limit}-byte limit", limit=limit)
                digest.update(chunk)
                await anyio.to_thread.run_sync(out.write, chunk)
        if size == 0:
            raise InvalidImageError(file.filename or None, "empty upload")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, digest.hexdigest()


@search_router.post("/upload", response_model=list[HitOut],
             responses={413: {"model": ErrorResponse,
                              "description": "Upload over max_upload_bytes, or an image over the pixel limit"}})
async def search_by_upload(
    file: UploadFile = File(..., description="The query image (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC)"),
    objects: str | None = Form(None, max_length=2000, description=OBJECTS_HELP),
    limit: int = Form(10, ge=0, le=1000),
    min_score: float | None = Form(None, ge=0.0, le=1.0),
    exclude_self: bool = Form(True, description="Leave out stored images with the upload's exact bytes"),
    offset: int = Form(0, ge=0, le=100_000, description=OFFSET_HELP),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> list[HitOut]:
    """Images similar to an uploaded image, by image-vector cosine in [0, 1], best first.

    The upload is decoded like an indexed file (and never stored). With ``exclude_self``,
    stored images whose bytes equal the upload's (same SHA-256) are left out. The photo filters
    are query parameters."""
    ex = state.extractor
    wanted = normalise_objects(objects)
    path, digest = await _spool(file, state.server.max_upload_bytes)

    def work() -> list[HitOut]:
        want = limit + offset
        extra = 4 if exclude_self else 0
        while True:  # ends: each round either has enough hits or asks for twice as many extra
            hits = ex.search_image(path, objects=wanted, limit=want + extra, min_score=min_score,
                                   exclude_self=False, **filters)
            kept = [h for h in hits if not (exclude_self and h.record.content_hash == digest)]
            if len(kept) >= want or len(hits) < want + extra:
                return [HitOut.of(h) for h in kept[offset:want]]
            extra *= 2

    try:
        return await state.run(work)
    finally:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@search_router.get("/similar/{image_id}", response_model=list[HitOut])
async def search_similar(
    image_id: str,
    objects: str | None = Query(None, max_length=2000, description=OBJECTS_HELP),
    limit: int = Query(10, ge=0, le=1000),
    min_score: float | None = Query(None, ge=0.0, le=1.0),
    exclude_self: bool = Query(True, description="Leave the image itself out"),
    offset: int = Query(0, ge=0, le=100_000, description=OFFSET_HELP),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> list[HitOut]:
    """"More like this": images similar to a stored image, by its stored vector (with
    ``exclude_self=false``, by its file, inside the allowed roots, so that it is among them),
    with the photo filters."""
    ex = state.extractor
    if exclude_self:
        hits = await state.run(ex.search_similar, image_id, objects=normalise_objects(objects), limit=limit,
                               min_score=min_score, offset=offset, **filters)
        return [HitOut.of(h) for h in hits]
    record = await state.run(ex.get, image_id)
    path = state.guard.resolve(record.path, "path")
    hits = await state.run(ex.search_image, path, objects=normalise_objects(objects), limit=limit + offset + 1,
                           min_score=min_score, exclude_self=False, **filters)
    return [HitOut.of(h) for h in hits if not (exclude_self and h.record.id == image_id)][offset:offset + limit]
