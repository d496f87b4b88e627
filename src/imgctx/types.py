"""The library's value types: frozen dataclasses, independent of any HTTP schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tag:
    """An object tag with the tagger's confidence in [0, 1].

    ``coarse`` marks a common noun derived from finer labels (a "cat" for a "tabby").
    ``confident`` False marks a candidate below the tagger's threshold: it is not one of the
    record's ``objects`` (not stored, not filterable) but its words still help text search.
    """

    label: str
    score: float
    coarse: bool = False
    confident: bool = True


@dataclass(frozen=True)
class ImageRecord:
    """Everything imgctx knows about one image file.

    ``id`` is derived from the absolute path, so one file is one record; ``content_hash`` is the
    SHA-256 of the file's bytes and ``phash``/``dhash`` are 64-bit perceptual hashes in hex.
    ``objects`` holds the tag labels (fine labels and their coarse nouns), ``tags`` the same
    labels with scores.
    """

    id: str
    path: str
    filename: str
    size: tuple[int, int]
    file_size: int
    format: str
    caption: str
    objects: tuple[str, ...]
    content_hash: str
    phash: str
    dhash: str
    created_at: datetime
    updated_at: datetime
    mtime_ns: int = 0
    tags: tuple[Tag, ...] = ()

    def image_info(self) -> dict[str, Any]:
        """The contract's ``image_info`` fields as plain JSON-ready values."""
        return {
            "id": self.id,
            "path": self.path,
            "filename": self.filename,
            "size": [self.size[0], self.size[1]],
            "file_size": self.file_size,
            "format": self.format,
            "caption": self.caption,
            "objects": list(self.objects),
        }

    def to_dict(self) -> dict[str, Any]:
        """All fields as JSON-ready values."""
        info = self.image_info()
        info.update(
            content_hash=self.content_hash,
            phash=self.phash,
            dhash=self.dhash,
            created_at=self.created_at.isoformat(),
            updated_at=self.updated_at.isoformat(),
            tags=[{"label": t.label, "score": round(t.score, 4)} for t in self.tags],
        )
        return info


@dataclass(frozen=True)
class SearchHit:
    """A search result: the record, its score in [0, 1] (higher is closer) and ``1 - score``.

    ``scores`` holds the per-vector-space similarity that was fused into ``score``.
    """

    record: ImageRecord
    score: float
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def distance(self) -> float:
        return 1.0 - self.score

    def to_dict(self) -> dict[str, Any]:
        out = self.record.image_info()
        out.update(score=round(self.score, 6), distance=round(self.distance, 6))
        return out


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of processing one file.

    ``was_duplicate`` is True when the store already held an image with the same bytes (same
    ``content_hash``) before this call, or an earlier file of the same run had them: either this
    very file, unchanged (then ``skipped`` is True and nothing was recomputed), or a copy at
    another path, named by ``duplicate_of`` (a record for this path is stored too, reusing the
    copy's model outputs). With ``force=True`` the models run again, and ``was_duplicate`` and
    ``duplicate_of`` still say whether the bytes were already known.
    """

    record: ImageRecord
    was_duplicate: bool
    skipped: bool
    processing_time: float
    duplicate_of: str | None = None


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be processed and why; the rest of the run goes on."""

    path: str
    reason: str


@dataclass(frozen=True)
class BatchReport:
    """Summary of a multi-file run (``process_many`` / ``process_directory``).

    ``processed`` counts records written by this run, ``skipped`` unchanged files that were
    already indexed, ``failed`` files that could not be used (each with its reason).
    """

    total_files: int
    processed: int
    skipped: int
    failed: int
    processed_ids: tuple[str, ...]
    skipped_ids: tuple[str, ...]
    failed_files: tuple[FailedFile, ...]
    processing_time: float
    results: tuple[ProcessResult, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_files": self.total_files,
            "processed": self.processed,
            "skipped": self.skipped,
            "failed": self.failed,
            "processed_ids": list(self.processed_ids),
            "failed_files": [{"path": f.path, "reason": f.reason} for f in self.failed_files],
            "processing_time": round(self.processing_time, 4),
        }


@dataclass(frozen=True)
class Progress:
    """Passed to a ``progress`` callback after each file of a multi-file run."""

    done: int
    total: int
    path: str
    status: str  # "processed", "skipped" or "failed"

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


@dataclass(frozen=True)
class ModelStatus:
    """Load state of the model behind one role."""

    role: str
    name: str
    loaded: bool
    load_time: float | None
    device: str


@dataclass(frozen=True)
class SpaceSpec:
    """A named vector space: which model fills it and with how many dimensions."""

    name: str
    model: str
    dim: int


@dataclass(frozen=True)
class StoredVectors:
    """A record with its vectors, as written to a store."""

    record: ImageRecord
    vectors: dict[str, np.ndarray]
