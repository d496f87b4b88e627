"""Duplicate detection (``/api/v1/duplicates``), on the library's duplicate engine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query

from imgctx import ImgctxError, load_image
from imgctx.server.errors import PathNotAllowedError
from imgctx.server.routes.directories import confined_scan
from imgctx.server.schemas import (
    PATH_LIMITS,
    CheckImageResponse,
    CompareRequest,
    CompareResponse,
    DuplicateCheckRequest,
    DuplicateCheckResponse,
    DuplicateGroupInfo,
    DuplicateMatchInfo,
    FailureInfo,
    RemovalResponse,
)
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"])

#: ``keep_first=false`` keeps the largest file of each group.
KEEP_OTHERWISE = "largest"


def _folder(state: AppState, value: str, recursive: bool) -> tuple[Path, list[Path]]:
    """A folder inside the roots whose image files all are too (a link out is refused)."""
    folder = state.guard.resolve(value, "directory_path")
    files, refused = confined_scan(state, folder, recursive)
    if refused:
        raise PathNotAllowedError(
            f"{len(refused)} file(s) in directory_path link outside the allowed roots",
            field="directory_path", paths=[f.path for f in refused[:20]],
        )
    return folder, files


def _check_image(state: AppState, image: Path, threshold: float, limit: int) -> CheckImageResponse:
    start = time.perf_counter()
    ex = state.extractor
    matches = ex.check_image(image, threshold=threshold, limit=limit)
    own = ex.store.get_by_path(str(image))
    return CheckImageResponse(
        image_path=str(image), image_id=own.id if own else None, similarity_threshold=threshold,
        total_matches=len(matches), duplicates=[DuplicateMatchInfo(**m.to_dict()) for m in matches],
        check_time=round(time.perf_counter() - start, 4),
        message=f"Found {len(matches)} duplicates of {image.name}",
    )


def _image_against_folder(state: AppState, image: Path, files: list[Path], threshold: float) -> DuplicateCheckResponse:
    """Compare one image with every image file of a folder (pairwise: one decode per file)."""
    start = time.perf_counter()
    ex = state.extractor
    load_image(image, ex.settings.max_image_pixels, ex.settings.max_file_bytes)  # a bad image fails once
    own = ex.store.get_by_path(str(image))
    ids: list[str] = []
    scores: list[float] = []
    paths: list[str] = []
    exact: list[bool] = []
    failed: list[FailureInfo] = []
    for path in files:
        if path == image:
            continue
        try:
            comparison = ex.compare(image, path, threshold=threshold)
        except ImgctxError as exc:
            failed.append(FailureInfo(path=str(path), reason=getattr(exc, "reason", str(exc))))
            continue
        if comparison.is_duplicate:
            record = ex.store.get_by_path(str(path))
            ids.append(record.id if record else str(path))
            scores.append(round(comparison.similarity, 6))
            paths.append(str(path))
            exact.append(comparison.exact)
    groups = []
    if ids:
        groups.append(DuplicateGroupInfo(representative_id=own.id if own else None, duplicate_ids=ids,
                                         similarity_scores=scores, paths=[str(image), *paths], exact=exact))
    return DuplicateCheckResponse(
        total_images=len([f for f in files if f != image]) + 1, duplicate_groups=groups,
        total_duplicates=len(ids), similarity_threshold=threshold,
        check_time=round(time.perf_counter() - start, 4), failed_files=failed,
        message=f"Found {len(groups)} duplicate groups with {len(ids)} duplicate images",
    )


@router.post("/check", response_model=DuplicateCheckResponse)
async def check_duplicates(body: DuplicateCheckRequest, state: AppState = Depends(get_state)) -> DuplicateCheckResponse:
    """Duplicate groups: of the store, of a folder, or of one image (against the store or a folder)."""
    ex = state.extractor
    threshold = body.similarity_threshold
    if body.image_path is not None:
        image = state.guard.resolve(body.image_path, "image_path")
        if body.directory_path is not None:
            _, files = await state.run(_folder, state, body.directory_path, body.recursive)
            return await state.run(_image_against_folder, state, image, files, threshold)
        found = await state.run(_check_image, state, image, threshold, 1000)
        groups = []
        if found.duplicates:
            groups.append(DuplicateGroupInfo(
                representative_id=found.image_id, duplicate_ids=[m.id for m in found.duplicates],
                similarity_scores=[m.similarity for m in found.duplicates],
                paths=[found.image_path, *(m.path for m in found.duplicates)],
                exact=[m.comparison.exact for m in found.duplicates],
            ))
        n = len(found.duplicates)
        return DuplicateCheckResponse(
            total_images=await state.run(ex.count), duplicate_groups=groups, total_duplicates=n,
            similarity_threshold=threshold, check_time=found.check_time, failed_files=[],
            message=f"Found {len(groups)} duplicate groups with {n} duplicate images",
        )
    if body.directory_path is not None:
        folder, _ = await state.run(_folder, state, body.directory_path, body.recursive)
        report = await state.run(ex.find_duplicates, threshold, directory=folder, recursive=body.recursive)
    else:
        report = await state.run(ex.find_duplicates, threshold)
    return DuplicateCheckResponse.of(report)


@router.get("/check-image", response_model=CheckImageResponse)
async def check_image(
    image_path: str = Query(..., **PATH_LIMITS),
    similarity_threshold: float = Query(0.95, ge=0.0, le=1.0),
    limit: int = Query(50, ge=1, le=1000),
    state: AppState = Depends(get_state),
) -> CheckImageResponse:
    """Stored images that duplicate one image file, most similar first."""
    image = state.guard.resolve(image_path, "image_path")
    return await state.run(_check_image, state, image, similarity_threshold, limit)


@router.get("/check-directory", response_model=DuplicateCheckResponse)
async def check_directory(
    directory_path: str = Query(..., **PATH_LIMITS),
    similarity_threshold: float = Query(0.95, ge=0.0, le=1.0),
    recursive: bool = Query(False),
    state: AppState = Depends(get_state),
) -> DuplicateCheckResponse:
    """Duplicate groups among the image files of a folder (indexed or not; the store is unchanged)."""
    folder, _ = await state.run(_folder, state, directory_path, recursive)
    report = await state.run(state.extractor.find_duplicates, similarity_threshold, directory=folder,
                             recursive=recursive)
    return DuplicateCheckResponse.of(report)


@router.post("/compare", response_model=CompareResponse)
async def compare_images(body: CompareRequest, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Every similarity metric between two image files, and the verdict at the threshold."""
    a = state.guard.resolve(body.image1_path, "image1_path")
    b = state.guard.resolve(body.image2_path, "image2_path")
    comparison = await state.run(state.extractor.compare, a, b, threshold=body.similarity_threshold)
    verdict = "duplicates" if comparison.is_duplicate else "not duplicates"
    return {**comparison.to_dict(), "success": True, "image1_path": str(a), "image2_path": str(b),
            "message": f"The images are {verdict} (similarity {comparison.similarity:.3f})"}


@router.delete("/remove-duplicates", response_model=RemovalResponse)
async def remove_duplicates(
    similarity_threshold: float = Query(0.98, ge=0.0, le=1.0),
    dry_run: bool = Query(True, description="Only report what would be removed"),
    keep_first: bool = Query(True, description="Keep the first image of each group (else the largest file)"),
    keep: str | None = Query(None, pattern="^(first|largest|highest-resolution)$",
                             description="Keep policy; overrides keep_first"),
    delete_files: bool = Query(False, description="Also delete the removed images' files"),
    state: AppState = Depends(get_state),
) -> RemovalResponse:
    """Remove all but one image of every duplicate group (a dry run by default)."""
    ex = state.extractor
    policy = keep or ("first" if keep_first else KEEP_OTHERWISE)

    def work() -> RemovalResponse:
        if not dry_run and delete_files:  # every file to delete must be inside the roots
            plan = ex.remove_duplicates(similarity_threshold, dry_run=True, keep=policy)
            for path in plan.removed_paths:
                state.guard.resolve(path, "path")
        report = ex.remove_duplicates(similarity_threshold, dry_run=dry_run, keep=policy,
                                      delete_files=delete_files)
        return RemovalResponse.of(report)

    return await state.write(work)
