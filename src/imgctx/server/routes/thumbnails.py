"""Thumbnails (``GET /api/v1/images/{id}/thumbnail``), cached on disk beside the store.

A cached file's name holds a key made of the record id, the image file's size and modification
time, the thumbnail size and format: a changed file gets a new key (and a new ``ETag``), so a
stale thumbnail is never served; the older files of the same id and size are then removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse

from imgctx import ImageNotFoundError, ImageRecord, load_image
from imgctx.server.routes.images import BINARY
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/images", tags=["images"])

MEDIA = {"jpeg": "image/jpeg", "webp": "image/webp"}
#: Browsers keep a thumbnail but ask again (a cheap 304) before they reuse it.
CACHE_CONTROL = "private, no-cache"


def cache_folder(state: AppState) -> Path:
    """``<db_path>/thumbnails``: beside the store, one sub-folder per two-letter id prefix."""
    return Path(state.settings.db_path) / "thumbnails"


def _key(record: ImageRecord, stat: os.stat_result, size: int, fmt: str) -> str:
    text = f"{record.id}:{stat.st_size}:{stat.st_mtime_ns}:{size}:{fmt}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _make(state: AppState, source: Path, target: Path, size: int, fmt: str) -> None:
    """Decode (EXIF orientation applied), shrink to fit ``size`` and write atomically; then drop
    the thumbnails made from an older version of the file."""
    settings = state.settings
    image = load_image(source, settings.max_image_pixels, settings.max_file_bytes, size).image
    image.thumbnail((size, size))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{uuid.uuid4().hex}.part")
    try:
        if fmt == "webp":
            image.save(tmp, "WEBP", quality=80, method=4)
        else:
            image.save(tmp, "JPEG", quality=82, optimize=True, progressive=True)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    stem = target.name.rsplit("-", 1)[0]
    for old in target.parent.glob(f"{stem}-*"):
        if old != target:
            with contextlib.suppress(OSError):
                old.unlink()


def _thumbnail(state: AppState, image_id: str, size: int, fmt: str, known: set[str]) -> tuple[Path | None, str]:
    """The cached file and its ETag; no file (None) when the client's ``known`` ETags hold it."""
    record = state.extractor.get(image_id)
    source = state.guard.resolve(record.path, "path")
    try:
        stat = source.stat()
    except FileNotFoundError:
        raise ImageNotFoundError(record.path, "the image file no longer exists") from None
    key = _key(record, stat, size, fmt)
    if f'"{key}"' in known or "*" in known:
        return None, f'"{key}"'
    target = cache_folder(state) / record.id[:2] / f"{record.id}-{size}-{fmt}-{key}.{'jpg' if fmt == 'jpeg' else fmt}"
    if not target.is_file():
        _make(state, source, target, size, fmt)
    return target, f'"{key}"'


@router.get("/{image_id}/thumbnail", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": BINARY, "image/*": BINARY},
                             "description": "The thumbnail (image/jpeg or image/webp)"},
                       304: {"description": "Not modified (If-None-Match matched the ETag)"}})
async def thumbnail(
    request: Request,
    image_id: str,
    size: int = Query(256, ge=16, le=1024, description="The longer side in pixels"),
    format: Literal["jpeg", "webp"] = Query("jpeg", description="JPEG or WebP"),
    state: AppState = Depends(get_state),
) -> Response:
    """A small copy of an image (aspect ratio kept), made once and cached; ``ETag`` and 304."""
    known = {tag.strip() for tag in request.headers.get("if-none-match", "").split(",") if tag.strip()}
    path, etag = await state.run(_thumbnail, state, image_id, size, format, known)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if path is None:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=MEDIA[format], headers=headers)
