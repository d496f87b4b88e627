"""Removing duplicates, and the rules that keep it from losing a photo.

A removal keeps each group's representative and removes the members whose own similarity to it
reaches the threshold (members linked only through another member stay). With ``delete_files``
a member's file is deleted only when that cannot lose what its record describes:

- the kept file must be present and unchanged since it was indexed, else the whole group stays;
- a member's file changed since it was indexed stays, with its record;
- a symbolic link, or another path to the kept file itself, loses its record but not the file;
- with ``within``, a file outside those folders stays, with its record;
- a file is deleted by :func:`imgctx._fsops.delete_file`: never through a folder swapped for a link.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from imgctx._errors import FileOutsideRootsError
from imgctx._fsops import delete_file, root_of
from imgctx._probe import same_as_indexed, unchanged_since_indexed
from imgctx._types import DuplicateGroup, FailedFile, ImageRecord


class _Changed:
    """The refusal for a file changed since it was indexed (it stays, with its record)."""


_CHANGED = _Changed()


def _deletion_refusal(path: str, keep_path: str, record: ImageRecord | None) -> str | _Changed | None:
    """Why the file of a removed duplicate must not be deleted, or None when it may be."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"not deleted: {exc.strerror or exc}"
    if os.path.islink(path):
        return "not deleted: a symbolic link (its record is removed)"
    try:
        if os.path.samefile(path, keep_path):
            return f"not deleted: the same file as the kept {keep_path} (its record is removed)"
    except OSError:
        pass
    if record is not None and not same_as_indexed(st, record):
        return _CHANGED
    return None


def _missing_or_changed(path: str, record: ImageRecord | None) -> bool:
    if record is None:
        return not os.path.exists(path)
    return not unchanged_since_indexed(path, record)


@dataclass
class RemovalPlan:
    """What a removal does: records kept, removed and left, files to delete, files refused."""

    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removed_paths: list[str] = field(default_factory=list)
    to_unlink: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    failed: list[FailedFile] = field(default_factory=list)


def plan_removal(groups: Sequence[DuplicateGroup], threshold: float, delete_files: bool,
                 records: Mapping[str, ImageRecord],
                 within: Sequence[str | os.PathLike[str]] | None = None) -> RemovalPlan:
    """Apply the rules above to every group (``records``: the groups' records, needed with
    ``delete_files``)."""
    plan = RemovalPlan()
    for g in groups:
        plan.kept.append(g.representative_id)
        keep_path = g.paths[0]
        members = list(zip(g.duplicate_ids, g.paths[1:], g.similarity_scores, strict=True))
        if delete_files and _missing_or_changed(keep_path, records.get(g.representative_id)):
            # deleting the copies could lose the only copy of what the record describes
            for rid, path, _ in members:
                plan.left.append(rid)
                plan.failed.append(FailedFile(path, f"left in place: the kept file {keep_path} is missing "
                                                    "or changed since it was indexed"))
            continue
        for rid, path, score in members:
            if score < threshold:
                plan.left.append(rid)  # grouped only through another member
                continue
            if delete_files and within is not None and root_of(path, within) is None:
                plan.left.append(rid)
                plan.failed.append(FailedFile(path, "left in place with its record: outside the folders "
                                                    "files may be deleted from"))
                continue
            if delete_files:
                refusal = _deletion_refusal(path, keep_path, records.get(rid))
                if refusal is _CHANGED:
                    plan.left.append(rid)
                    plan.failed.append(FailedFile(path, "left in place: changed since it was indexed"))
                    continue
                if isinstance(refusal, str):
                    plan.failed.append(FailedFile(path, refusal))
                else:
                    plan.to_unlink.append(path)
            plan.removed.append(rid)
            plan.removed_paths.append(path)
    return plan


def delete_files(paths: Sequence[str], failed: list[FailedFile],
                 within: Sequence[str | os.PathLike[str]] | None = None) -> list[str]:
    """Delete files; those deleted are returned (a missing one is not), a failure is appended
    to ``failed``."""
    deleted: list[str] = []
    for p in paths:
        try:
            if delete_file(p, within):
                deleted.append(p)
        except FileOutsideRootsError as exc:
            failed.append(FailedFile(p, f"not deleted: {exc.reason}"))
        except OSError as exc:
            failed.append(FailedFile(p, f"cannot delete file: {exc.strerror or exc}"))
    return deleted
