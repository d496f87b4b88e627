"""Duplicate detection (``/api/v1/duplicates``), on the library's duplicate engine."""

from __future__ import annotations

import re
import time
from pathlib import Path

from fastapi import APIRouter, Depends, Query

from imgctx import DEFAULT_THRESHOLD, KEEP_POLICIES, REMOVE_THRESHOLD
from imgctx.server.errors import PathNotAllowedError
from imgctx.server.routes.directories import confined_scan
from imgctx.server.routes.images import WITHIN, within_folders
from imgctx.server.schemas import (
    PATH_LIMITS,
    CheckImageResponse,
    CompareRequest,
    CompareResponse,
    DuplicateCheckRequest,
    DuplicateCheckResponse,
    DuplicateGroupInfo,
    DuplicateMatchInfo,
    RemovalResponse,
)
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/duplicates", tags=["duplicates"])

#: ``keep_first=false`` keeps the largest file of each group.
KEEP_OTHERWISE = "largest"
#: The ``keep`` values the library knows.
KEEP_PATTERN = f"^({'|'.join(re.escape(k) for k in KEEP_POLICIES)})$"


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
    own = ex.get_by_path(image)
    return CheckImageResponse(
        image_path=str(image), image_id=own.id if own else None, similarity_threshold=threshold,
        total_matches=len(matches), duplicates=[DuplicateMatchInfo.of(m) for m in matches],
        check_time=round(time.perf_counter() - start, 4),
        message=f"Found {len(matches)} duplicates of {image.name}",
    )


def _image_duplicates(state: AppState, image: Path, threshold: float, folder: Path | None,
                      recursive: bool) -> DuplicateCheckResponse:
    """One image's duplicates, against the store or a folder's files (at most one group). The
    contract names images by their record ids: the checked image's id is None when it is not
    indexed, and a duplicate that is not indexed (in a folder) goes by its path."""
    ex = state.extractor
    report = ex.find_duplicates(threshold, directory=folder, recursive=recursive, image=image)
    groups = []
    for g in report.groups:
        own = ex.get_by_path(g.representative_path)
        ids = [record.id if (record := ex.get_by_path(path)) else path for path in g.paths[1:]]
        groups.append(DuplicateGroupInfo(
            representative_id=own.id if own else None, duplicate_ids=ids,
            similarity_scores=list(g.similarity_scores), paths=list(g.paths), exact=list(g.exact),
        ))
    return DuplicateCheckResponse.of(report, groups)


@router.post("/check", response_model=DuplicateCheckResponse)
async def check_duplicates(body: DuplicateCheckRequest, state: AppState = Depends(get_state)) -> DuplicateCheckResponse:
    """Duplicate groups: of the store, of a folder, or of one image (against the store or a folder)."""
    ex = state.extractor
    threshold = body.similarity_threshold
    if body.image_path is not None:
        image = state.guard.resolve(body.image_path, "image_path")
        folder = None
        if body.directory_path is not None:
            folder, _ = await state.run(_folder, state, body.directory_path, body.recursive)
        return await state.run(state.decodes.run, [image], _image_duplicates, state, image, threshold, folder,
                               body.recursive)
    if body.directory_path is not None:
        folder, _ = await state.run(_folder, state, body.directory_path, body.recursive)
        report = await state.run(ex.find_duplicates, threshold, directory=folder, recursive=body.recursive)
    else:
        report = await state.run(ex.find_duplicates, threshold)
    return DuplicateCheckResponse.of(report)


@router.get("/check-image", response_model=CheckImageResponse)
async def check_image(
    image_path: str = Query(..., **PATH_LIMITS),
    similarity_threshold: float = Query(DEFAULT_THRESHOLD, ge=0.0, le=1.0),
    limit: int = Query(50, ge=1, le=1000),
    state: AppState = Depends(get_state),
) -> CheckImageResponse:
    """Stored images that duplicate one image file, most similar first."""
    image = state.guard.resolve(image_path, "image_path")
    return await state.run(state.decodes.run, [image], _check_image, state, image, similarity_threshold, limit)


@router.get("/check-directory", response_model=DuplicateCheckResponse)
async def check_directory(
    directory_path: str = Query(..., **PATH_LIMITS),
    similarity_threshold: float = Query(DEFAULT_THRESHOLD, ge=0.0, le=1.0),
    recursive: bool = Query(False),
    state: AppState = Depends(get_state),
) -> DuplicateCheckResponse:
    """Duplicate groups among the image files of a folder (indexed or not; the store is unchanged)."""
    folder, _ = await state.run(_folder, state, directory_path, recursive)
    report = await state.run(state.extractor.find_duplicates, similarity_threshold, directory=folder,
                             recursive=recursive)
    return DuplicateCheckResponse.of(report)


@router.post("/compare", response_model=CompareResponse)
async def compare_images(body: CompareRequest, state: AppState = Depends(get_state)) -> CompareResponse:
    """Every similarity metric between two image files, and the verdict at the threshold."""
    a = state.guard.resolve(body.image1_path, "image1_path")
    b = state.guard.resolve(body.image2_path, "image2_path")
    comparison = await state.run(state.decodes.run, [a, b], state.extractor.compare, a, b,
                                 threshold=body.similarity_threshold)
    return CompareResponse.of(comparison, str(a), str(b))


@router.delete("/remove-duplicates", response_model=RemovalResponse)
async def remove_duplicates(
    similarity_threshold: float = Query(REMOVE_THRESHOLD, ge=0.0, le=1.0),
    dry_run: bool = Query(True, description="Only report what would be removed"),
    keep_first: bool = Query(True, description="Keep the first image of each group (else the largest file)"),
    keep: str | None = Query(None, pattern=KEEP_PATTERN,
                             description="Keep policy; overrides keep_first"),
    delete_files: bool = Query(False, description="Also delete the removed images' files"),
    within: list[str] | None = WITHIN,
    state: AppState = Depends(get_state),
) -> RemovalResponse:
    """Remove all but one image of every duplicate group (a dry run by default)."""
    ex = state.extractor
    folders = within_folders(state, within)
    policy = keep or ("first" if keep_first else KEEP_OTHERWISE)

    def work() -> RemovalResponse:  # files are deleted only inside the roots, never via a link
        report = ex.remove_duplicates(similarity_threshold, dry_run=dry_run, keep=policy,
                                      delete_files=delete_files, within=folders or state.guard.roots)
        return RemovalResponse.of(report)

    return await state.write(work)
