"""Single images: process, upload, info, download, list/search, delete (``/api/v1/images``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from imgctx import (
    Extractor,
    FileOutsideRootsError,
    ImageError,
    ImageNotFoundError,
    ImageRecord,
    InvalidImageError,
    load_image,
    normalise_objects,
    sniff_format,
)
from imgctx import delete_file as delete_confined
from imgctx.server.errors import BadRequestError, PathNotAllowedError, UploadExistsError, UploadTooLargeError
from imgctx.server.filters import photo_filters
from imgctx.server.paths import safe_filename
from imgctx.server.schemas import (
    DeleteImageResponse,
    ErrorResponse,
    ImageDetails,
    ImageInfo,
    ProcessImageRequest,
    ProcessImageResponse,
    SearchResult,
    UploadResponse,
    image_info_data,
)
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/images", tags=["images"])

#: File suffixes per sniffed format; the first is used when an upload's name has none that fits.
SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe"), "PNG": (".png",), "WEBP": (".webp",), "GIF": (".gif",),
    "BMP": (".bmp", ".dib"), "TIFF": (".tif", ".tiff"), "HEIF": (".heic", ".heif"),
}
MEDIA_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
    "BMP": "image/bmp", "TIFF": "image/tiff", "HEIF": "image/heif", "MPO": "image/jpeg",
}
CHUNK = 1024 * 1024
#: A file body in the OpenAPI schema (generated clients read it as bytes).
BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.post("/process", response_model=ProcessImageResponse)
async def process_image(body: ProcessImageRequest, state: AppState = Depends(get_state)) -> ProcessImageResponse:
    """Caption, tag, embed and store one image file (a path inside an allowed root)."""
    path = state.guard.resolve(body.image_path, "image_path")
    result = await state.write(state.decodes.run, [path], state.extractor.process, path, force=body.force_reprocess)
    state.announce("image_processed", result.record)
    return ProcessImageResponse.of(result)


def _place(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the checked upload into place; without overwrite an existing file is never replaced."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        try:
            os.link(tmp, target)  # atomic: fails when the name exists
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links (FAT, exFAT, some network shares)
            _copy_exclusive(tmp, target)
    except FileExistsError:
        raise UploadExistsError(f"file already exists: {target.name}", filename=target.name) from None
    finally:
        tmp.unlink(missing_ok=True)


def _copy_exclusive(tmp: Path, target: Path) -> None:
    """The fallback of ``_place`` without hard links: create ``target`` exclusively (FileExistsError
    when it exists, so nothing is replaced) and copy the upload into it; a failed copy is removed."""
    with open(target, "xb") as out:
        try:
            with open(tmp, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
        except BaseException:
            out.close()
            target.unlink(missing_ok=True)
            raise


@router.post("/upload", response_model=UploadResponse, status_code=201,
             responses={409: {"model": ErrorResponse, "description": "File exists and overwrite is false"},
                        413: {"model": ErrorResponse, "description": "Upload over max_upload_bytes"}})
async def upload_image(
    file: UploadFile = File(..., description="The image file"),
    process_immediately: bool = Form(True),
    overwrite: bool = Form(False),
    upload_dir: str | None = Form(None, max_length=4096, description="Folder relative to the first allowed root, or absolute "
                                  "inside a root (default: the upload_dir setting, 'uploads')"),
    state: AppState = Depends(get_state),
) -> UploadResponse:
    """Store an uploaded image (checked by content, not by name) and optionally process it."""
    folder = state.guard.resolve(upload_dir or state.server.upload_dir, "upload_dir")
    name = safe_filename(file.filename)
    limit = state.server.max_upload_bytes
    try:
        await state.run(folder.mkdir, parents=True, exist_ok=True)
    except FileExistsError:
        raise BadRequestError(f"upload_dir is not a folder: {upload_dir}", field="upload_dir") from None
    tmp = folder / f".upload-{uuid.uuid4().hex}.part"
    try:
        size = 0
        head = b""
        with open(tmp, "wb") as out:
            while chunk := await file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(f"upload is over the {limit}-byte limit", limit=limit)
                if len(head) < 32:
                    head += chunk[: 32 - len(head)]
                await state.run(out.write, chunk)
        if size == 0:
            raise InvalidImageError(name, "empty upload")
        fmt = sniff_format(head)
        if fmt is None:
            raise InvalidImageError(name, "not a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC)")
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in SUFFIXES[fmt]:
            name = f"{stem.rstrip('._-') or 'upload'}{SUFFIXES[fmt][0]}"
        try:
            await state.run(state.decodes.run, [tmp], load_image, tmp, state.settings.max_image_pixels,
                            state.settings.max_file_bytes)
        except ImageError as exc:  # name the client's file, not the hidden temporary one
            raise type(exc)(name, exc.reason) from None
        target = folder / name
        if target.is_dir():
            raise UploadExistsError(f"a folder of that name exists: {name}", filename=name)
        if target.exists() and not overwrite:
            raise UploadExistsError(f"file already exists: {name}", filename=name)
        await state.run(_place, tmp, target, overwrite)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
    shown = str(target.relative_to(state.guard.base)) if target.is_relative_to(state.guard.base) else str(target)
    response = UploadResponse(filename=name, file_path=shown, file_size=size,
                              message="Image uploaded successfully")
    if process_immediately:
        result = await state.write(state.decodes.run, [target], state.extractor.process, target, force=overwrite)
        state.announce("image_processed", result.record)
        response.image_id = result.record.id
        response.image_info = ImageInfo.model_validate(result.record)
        response.was_duplicate = result.was_duplicate
        response.message = "Image uploaded and processed successfully"
    return response


@router.get("/info/{image_id}", response_model=ImageDetails)
async def get_image(image_id: str, state: AppState = Depends(get_state)) -> ImageDetails:
    """Everything stored about one image: ``image_info`` plus hashes, tags and timestamps."""
    return ImageDetails.of(await state.run(state.extractor.get, image_id))


@router.get("/download/{image_id}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": BINARY, "image/*": BINARY},
                             "description": "The image file (its own image/* media type)"}})
async def download_image(image_id: str, state: AppState = Depends(get_state)) -> FileResponse:
    """The image file of a record (only inside the allowed roots)."""
    record = await state.run(state.extractor.get, image_id)
    path = state.guard.resolve(record.path, "path")
    if not await state.run(path.is_file):
        raise ImageNotFoundError(record.path, "the image file no longer exists")
    return FileResponse(path, media_type=MEDIA_TYPES.get(record.format, "application/octet-stream"),
                        filename=record.filename)


@router.get("/", response_model=list[SearchResult], response_model_exclude_none=True)
async def list_images(
    query: str | None = Query(None, max_length=2000, description="Text to search for; omit to list",
                              examples=["a cat on a sofa"]),
    objects: str | None = Query(None, max_length=2000, description="Comma-separated objects, any of them"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31, description="Skip this many images (or best hits)"),
    min_score: float | None = Query(None, ge=0.0, le=1.0, description="Search mode only"),
    include_metadata: bool = Query(True, description="Search mode only: include score, distance and scores"),
    order: Literal["oldest", "newest"] = Query("oldest", description="List mode only: indexed first or last first"),
    filters: dict[str, Any] = Depends(photo_filters),
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """List images (optionally by object and the photo filters) or, with ``query``, search them by text."""
    wanted = normalise_objects(objects)
    ex = state.extractor
    if query is not None and query.strip():
        hits = await state.run(ex.search, query, objects=wanted, limit=limit, min_score=min_score, offset=offset,
                               **filters)
        return [SearchResult.data(h, include_metadata) for h in hits]  # validated once, by FastAPI
    if order == "newest":
        return [image_info_data(r) for r in await state.run(newest_first, ex, wanted, limit, offset, filters)]
    records = await state.run(ex.list, objects=wanted, limit=limit, offset=offset, **filters)
    return [image_info_data(r) for r in records]  # validated once, by FastAPI


def newest_first(ex: Extractor, objects: list[str] | None, limit: int, offset: int,
                 filters: dict[str, Any] | None = None) -> list[ImageRecord]:
    """A page of records, the last indexed first: the matching page from the end, reversed."""
    filters = filters or {}
    total = ex.count(objects=objects, **filters)
    end = total - offset
    if end <= 0:
        return []
    start = max(0, end - limit)
    return list(reversed(ex.list(objects=objects, limit=end - start, offset=start, **filters)))


WITHIN = Query(None, description="Delete files only inside these folders (each inside the allowed roots; "
               "default: the roots)")


def within_folders(state: AppState, values: list[str] | None) -> tuple[Path, ...]:
    """The folders a client narrows deletions to (``within``), each inside the roots; () for none."""
    return tuple(state.guard.resolve(v, "within") for v in values or ())


@router.delete("/{image_id}", response_model=DeleteImageResponse)
async def delete_image(image_id: str, delete_file: bool = Query(False), within: list[str] | None = WITHIN,
                       state: AppState = Depends(get_state)) -> Any:
    """Remove an image from the store and, with ``delete_file``, its file (inside the roots only)."""
    ex = state.extractor
    folders = within_folders(state, within)
    record = await state.run(ex.get, image_id)
    if delete_file:  # a quick refusal; checked again, at the deletion itself, under the write lock
        state.guard.resolve(record.path, "path")

    def work() -> tuple[ImageRecord, bool]:
        deleted = False
        if delete_file:
            current = ex.get(image_id)
            state.guard.resolve(current.path, "path")
            try:
                deleted = delete_confined(current.path, within=folders or state.guard.roots)
            except FileOutsideRootsError as exc:
                if folders:  # outside the client's own folders: the library's error, as locally
                    raise
                raise PathNotAllowedError(str(exc), field="path") from None
        return ex.delete(image_id), deleted

    removed, deleted = await state.write(work)
    state.announce("image_deleted", removed, file_deleted=deleted)
    if deleted:
        message = "Image and file deleted"
    elif delete_file:
        message = "Image deleted from the database; its file was already missing"
    else:
        message = "Image deleted from the database"
    return DeleteImageResponse(image_id=removed.id, path=removed.path, file_deleted=deleted, message=message)
