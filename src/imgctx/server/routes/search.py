"""Image-to-image search (``POST /api/v1/search/image``) and the tags in the store
(``GET /api/v1/objects``): what the web app's "More like this" and filter chips use."""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from imgctx import InvalidImageError, normalise_objects, sniff_format
from imgctx.server.errors import BadRequestError, UploadTooLargeError
from imgctx.server.filters import photo_filters
from imgctx.server.routes.images import CHUNK
from imgctx.server.schemas import ObjectCount, SearchResult
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1", tags=["search"])
#: Takes an uploaded image: limited like uploads (``max_upload_bytes``), not like other bodies.
IMAGE_SEARCH_PATH = "/api/v1/search/image"


async def _spool(state: AppState, file: UploadFile) -> str:
    """The upload in a temporary file (checked: size limit, an image format); its path."""
    limit = state.server.max_upload_bytes
    fd, name = tempfile.mkstemp(prefix="imgctx-query-", suffix=".img")
    try:
        size, head = 0, b""
        with os.fdopen(fd, "wb") as out:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(f"upload is over the {limit}-byte limit", limit=limit)
                head += chunk[: max(0, 32 - len(head))]
                await state.run(out.write, chunk)
        if size == 0 or sniff_format(head) is None:
            raise InvalidImageError(file.filename, "not a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC)")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return name


@router.post(IMAGE_SEARCH_PATH.removeprefix("/api/v1"), response_model=list[SearchResult], response_model_exclude_none=True)
async def search_by_image(
    file: UploadFile | None = File(None, description="An image to search with"),
    image_id: str | None = Form(None, max_length=200, description="Or: a stored image's id ('more like this')"),
    image_path: str | None = Form(None, max_length=4096, description="Or: an image file inside the allowed roots"),
    objects: str | None = Form(None, max_length=2000, description="Comma-separated objects, any of them"),
    limit: int = Form(20, ge=1, le=1000),
    offset: int = Form(0, ge=0, le=100_000),
    min_score: float | None = Form(None, ge=0.0, le=1.0),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """Images like the given one, best first: give exactly one of ``file``, ``image_id`` or
    ``image_path``. Hits have the same fields as text search, with ``scores`` per space; the
    query image itself (by id or path) is left out."""
    given = [name for name, value in (("file", file), ("image_id", image_id), ("image_path", image_path))
             if value not in (None, "")]
    if len(given) != 1:
        raise BadRequestError("give exactly one of file, image_id or image_path", given=given)
    ex = state.extractor
    options = {"objects": normalise_objects(objects), "limit": limit, "offset": offset, "min_score": min_score,
               **filters}
    if image_id:
        hits = await state.run(ex.search_similar, image_id, **options)
    elif image_path:
        path = state.guard.resolve(image_path, "image_path")
        hits = await state.run(ex.search_image, path, **options)
    else:
        assert file is not None
        spooled = await _spool(state, file)
        try:
            hits = await state.run(ex.search_image, spooled, exclude_self=False, **options)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(spooled)
    return [SearchResult.data(h) for h in hits]


@router.get("/objects", response_model=list[ObjectCount])
async def object_counts(
    limit: int = Query(100, ge=1, le=1_000_000, description="At most this many, most common first"),
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """The object tags in the store with how many images carry each, most common first."""
    counts = await state.run(state.extractor.object_counts)
    return [{"label": label, "count": n} for label, n in list(counts.items())[:limit]]
