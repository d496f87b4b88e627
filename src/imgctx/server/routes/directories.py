"""Folders: process (now or in the background), scan, tasks (``/api/v1/directories``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query

from imgctx import FailedFile, Progress, scan_directory
from imgctx.server.schemas import (
    PATH_LIMITS,
    DirectoryProcessResponse,
    DirectoryRequest,
    ScannedFile,
    ScanResponse,
    TaskCreated,
    TaskInfo,
)
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/directories", tags=["directories"])


def confined_scan(state: AppState, folder: Path, recursive: bool) -> tuple[list[Path], list[FailedFile]]:
    """Image files of a folder, split into those inside the roots and links that lead outside."""
    inside: list[Path] = []
    refused: list[FailedFile] = []
    for path in scan_directory(folder, recursive):
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:
            refused.append(FailedFile(str(path), f"cannot be resolved: {exc}"))
            continue
        if state.guard.allowed(real):
            inside.append(real)
        else:
            refused.append(FailedFile(str(path), "links to a file outside the allowed roots"))
    return inside, refused


def process_folder(state: AppState, folder: Path, recursive: bool, force: bool,
                   progress: Callable[[int, int], None] | None = None) -> DirectoryProcessResponse:
    """Scan and process a folder (in the writer thread); one bad file never stops the run."""
    files, refused = confined_scan(state, folder, recursive)
    if progress is not None:
        progress(0, len(files))

    def on_progress(p: Progress) -> None:
        if progress is not None:
            progress(p.done, p.total)

    report = state.extractor.process_many(files, force=force, progress=on_progress)
    return DirectoryProcessResponse.of(report, refused)


@router.post("/process", response_model=DirectoryProcessResponse)
async def process_directory(body: DirectoryRequest, state: AppState = Depends(get_state)) -> DirectoryProcessResponse:
    """Process every image file of a folder and answer when done."""
    folder = state.guard.resolve(body.directory_path, "directory_path")
    result = await state.write(process_folder, state, folder, body.recursive, body.force_reprocess)
    state.announce("directory_processed", directory_path=str(folder), processed=result.processed)
    return result


@router.post("/process-async", response_model=TaskCreated)
async def process_directory_async(body: DirectoryRequest, state: AppState = Depends(get_state)) -> TaskCreated:
    """Start processing a folder in the background; follow it with the task endpoint or ``/ws/processing``."""
    folder = state.guard.resolve(body.directory_path, "directory_path")
    await state.run(scan_directory, folder, False)  # a missing folder is a 404 now, not a failed task

    def job(progress: Callable[[int, int], None]) -> dict[str, Any]:
        return process_folder(state, folder, body.recursive, body.force_reprocess, progress).model_dump()

    task = state.task_manager.submit(job, state.write, str(folder))
    return TaskCreated(task_id=task.task_id, status="queued", message="Directory processing started in background")


@router.get("/scan", response_model=ScanResponse, name="scan_directory")
async def scan(
    directory_path: str = Query(..., **PATH_LIMITS),
    recursive: bool = Query(False),
    state: AppState = Depends(get_state),
) -> ScanResponse:
    """Image files in a folder (by extension), without processing them."""
    folder = state.guard.resolve(directory_path, "directory_path")

    def work() -> ScanResponse:
        files, _ = confined_scan(state, folder, recursive)
        ex = state.extractor
        listed = []
        for path in files:
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            listed.append(ScannedFile(path=str(path), filename=path.name, file_size=size,
                                      indexed=ex.get_by_path(path) is not None))
        return ScanResponse(directory_path=str(folder), recursive=recursive, total_files=len(listed),
                            total_size=sum(f.file_size for f in listed), files=listed)

    return await state.run(work)


@router.get("/task/{task_id}", response_model=TaskInfo)
async def get_task(task_id: str, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """A background task's status, progress ("Processing image i of n"), result or error."""
    return state.task_manager.get(task_id).to_dict()


@router.get("/tasks", response_model=list[TaskInfo])
async def list_tasks(state: AppState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every background task this server has recorded, oldest first (interrupted ones included)."""
    return [t.to_dict() for t in state.task_manager.list()]
