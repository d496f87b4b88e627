"""``remove-duplicates`` with ``delete_files``: the library's plan, carried out by the server so
that every file is deleted with :func:`~imgctx.server.fsops.confined_unlink` (inside the roots,
never through a swapped link). Runs in the writer thread, so the plan and the deletions see the
same store."""

from __future__ import annotations

import dataclasses

from imgctx import FailedFile, RemovalReport
from imgctx.server.errors import ServiceError
from imgctx.server.fsops import confined_unlink
from imgctx.server.state import AppState


def remove_with_files(state: AppState, threshold: float, keep: str) -> RemovalReport:
    """Remove the duplicates the library would remove, and delete their files.

    A member whose file is outside the allowed roots (a stale link, a record made elsewhere) is
    skipped: its record and file stay, and ``failed_files`` says why; the rest of the run goes on.
    Files the library keeps on purpose (links, another path to the kept file, changed files)
    are reported as the library reports them.
    """
    ex = state.extractor
    plan = ex.remove_duplicates(threshold, dry_run=True, keep=keep, delete_files=True)
    kept_on_purpose = {f.path for f in plan.failed_files}
    failed = list(plan.failed_files)
    left = list(plan.left_ids)
    removed: list[str] = []
    removed_paths: list[str] = []
    to_delete: list[str] = []
    for rid, path in zip(plan.removed_ids, plan.removed_paths, strict=True):
        if path not in kept_on_purpose:
            try:
                state.guard.resolve(path, "path")
            except ServiceError as exc:
                left.append(rid)
                failed.append(FailedFile(path, f"left in place with its record: {exc.message}"))
                continue
            to_delete.append(path)
        removed.append(rid)
        removed_paths.append(path)
    ex.store.delete(removed)
    deleted: list[str] = []
    for path in to_delete:
        try:
            if confined_unlink(state.guard, path):
                deleted.append(path)
        except ServiceError as exc:
            failed.append(FailedFile(path, f"not deleted: {exc.message}"))
        except OSError as exc:
            failed.append(FailedFile(path, f"cannot delete file: {exc.strerror or exc}"))
    return dataclasses.replace(plan, dry_run=False, removed_ids=tuple(removed), removed_paths=tuple(removed_paths),
                               files_deleted=tuple(deleted), failed_files=tuple(failed), left_ids=tuple(left))
