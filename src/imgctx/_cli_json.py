"""The JSON the CLI prints with ``--json``: the library's value types as plain JSON-ready values.

The CLI is a front end like the server: its output format lives here, not on the library's
types. The field names are the service contract's (``image_info``, ``duplicate_groups``, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgctx._types import (
    BatchReport,
    Comparison,
    DuplicateGroup,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    RemovalReport,
    SearchHit,
)

if TYPE_CHECKING:
    from imgctx._migrate import MigrationReport


def image_info(record: ImageRecord) -> dict[str, Any]:
    """The contract's ``image_info`` fields."""
    return {
        "id": record.id,
        "path": record.path,
        "filename": record.filename,
        "size": [record.size[0], record.size[1]],
        "file_size": record.file_size,
        "format": record.format,
        "caption": record.caption,
        "objects": list(record.objects),
    }


def record(record: ImageRecord) -> dict[str, Any]:
    """``image_info`` plus hashes, timestamps and tags (``imgctx show``)."""
    info = image_info(record)
    info.update(
        content_hash=record.content_hash,
        phash=record.phash,
        dhash=record.dhash,
        created_at=record.created_at.isoformat(),
        updated_at=record.updated_at.isoformat(),
        tags=[{"label": t.label, "score": round(t.score, 4)} for t in record.tags],
        **details(record),
    )
    return info


def details(record: ImageRecord) -> dict[str, Any]:
    """Photo metadata (the fields the file has), text read, colours and people of a record."""
    photo = {}
    if record.photo is not None:
        photo = {k: v for k, v in vars(record.photo).items() if v is not None}
        if record.photo.taken_at is not None:
            photo["taken_at"] = record.photo.taken_at.isoformat()
        for key in ("camera", "place"):
            if getattr(record.photo, key):
                photo[key] = getattr(record.photo, key)
    return {"photo": photo, "text": record.text, "colors": list(record.colors), "people": record.people}


def hit(hit: SearchHit, explain: bool = False) -> dict[str, Any]:
    """``image_info`` plus ``score`` and ``distance`` (and with ``explain``, each space's score
    and what matched)."""
    out = image_info(hit.record)
    out.update(score=round(hit.score, 6), distance=round(hit.distance, 6))
    if explain:
        out.update(scores={k: round(v, 6) for k, v in hit.scores.items()}, matched_tags=list(hit.matched_tags),
                   matched_words=list(hit.matched_words), explanation=hit.explain())
    return out


def failures(files: tuple[FailedFile, ...]) -> list[dict[str, str]]:
    return [{"path": f.path, "reason": f.reason} for f in files]


def batch(report: BatchReport) -> dict[str, Any]:
    """``imgctx index``."""
    return {
        "total_files": report.total_files,
        "processed": report.processed,
        "skipped": report.skipped,
        "failed": report.failed,
        "processed_ids": list(report.processed_ids),
        "failed_files": failures(report.failed_files),
        "processing_time": round(report.processing_time, 4),
        "moved": report.moved,
        "pruned_ids": list(report.pruned_ids),
        "excluded_files": list(report.excluded_files),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def comparison(c: Comparison) -> dict[str, Any]:
    """``imgctx compare``."""
    return {
        "similarity": round(c.similarity, 6),
        "is_duplicate": c.is_duplicate,
        "threshold": c.threshold,
        "exact": c.exact,
        "phash_distance": c.phash_distance,
        "dhash_distance": c.dhash_distance,
        "hash_similarity": round(c.hash_similarity, 6),
        "embedding_cosine": _round(c.embedding_cosine),
        "embedding_similarity": _round(c.embedding_similarity),
        "reason": c.reason,
        "orientation": c.orientation,
        "turned_hash_distance": c.turned_hash_distance,
        "geometric_inliers": c.geometric_inliers,
        "geometric_contained": c.geometric_contained,
        "geometric_overlap": c.geometric_overlap,
    }


def group(g: DuplicateGroup) -> dict[str, Any]:
    """One item of the contract's ``duplicate_groups``."""
    return {
        "representative_id": g.representative_id,
        "duplicate_ids": list(g.duplicate_ids),
        "similarity_scores": [round(s, 6) for s in g.similarity_scores],
        "paths": list(g.paths),
        "exact": list(g.exact),
    }


def duplicates_message(report: DuplicateReport) -> str:
    return f"Found {len(report.groups)} duplicate groups with {report.total_duplicates} duplicate images"


def duplicates(report: DuplicateReport) -> dict[str, Any]:
    """``imgctx duplicates``: the contract's ``duplicates/check`` fields (without ``success``)."""
    return {
        "total_images": report.total_images,
        "duplicate_groups": [group(g) for g in report.groups],
        "total_duplicates": report.total_duplicates,
        "similarity_threshold": report.threshold,
        "check_time": round(report.check_time, 4),
        "failed_files": failures(report.failed_files),
        "message": duplicates_message(report),
    }


def removal(report: RemovalReport) -> dict[str, Any]:
    """``imgctx dedupe``."""
    return {
        "dry_run": report.dry_run,
        "keep": report.keep,
        "similarity_threshold": report.threshold,
        "duplicate_groups": [group(g) for g in report.groups],
        "kept_ids": list(report.kept_ids),
        "removed_ids": list(report.removed_ids),
        "removed_paths": list(report.removed_paths),
        "files_deleted": list(report.files_deleted),
        "failed_files": failures(report.failed_files),
        "left_ids": list(report.left_ids),
        "total_removed": len(report.removed_ids),
    }


def migration(report: MigrationReport) -> dict[str, Any]:
    """``imgctx migrate``."""
    return {"total": report.total, "copied": report.copied, "skipped": report.skipped,
            "destination_count": report.destination_count, "seconds": round(report.seconds, 3)}
