"""Keeping the index true to the disk: records of files that are gone are pruned.

A moved or renamed file is handled by ingest (it finds the vanished record by content hash and
carries its outputs over); this module finds the records under a folder whose files no longer
exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imgctx._types import ImageRecord

if TYPE_CHECKING:
    from imgctx._protocols import VectorStore

_PAGE = 1000


def all_records(store: VectorStore) -> Iterator[ImageRecord]:
    """Every record, page by page (collect before deleting: offsets shift)."""
    offset = 0
    while True:
        page = store.list(None, _PAGE, offset)
        yield from page
        if len(page) < _PAGE:
            return
        offset += len(page)


def under(path: str, folder: Path | None, recursive: bool) -> bool:
    """Whether ``path`` lies in ``folder`` (anywhere below it with ``recursive``); every path
    with ``folder`` None."""
    if folder is None:
        return True
    parent = Path(path).parent
    return parent == folder or (recursive and folder in parent.parents)


def vanished(store: VectorStore, folder: Path | None, recursive: bool) -> list[ImageRecord]:
    """The records in ``folder`` (all with None) whose file does not exist any more (a dangling
    link counts as gone)."""
    return [r for r in all_records(store) if under(r.path, folder, recursive) and not os.path.exists(r.path)]
