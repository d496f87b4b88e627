"""Batched ingest: scan -> read and decode (threads) -> models (batches) -> store (one
transaction per batch).

Files are read and decoded in a thread pool while the models work on the previous batch.
Unchanged files (same path, size and mtime as the stored record) are skipped without being
read; a file whose bytes match a stored image reuses that image's model outputs. A run killed
at any moment loses at most the batch in flight; running it again finishes the job, because
every committed batch is skipped as unchanged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgctx._components import Components
from imgctx._details import annotate_batch, caption_details, details_words, with_tags
from imgctx._errors import ImageError, ImgctxError, StoreError
from imgctx._ids import record_id_for
from imgctx._images import absolute
from imgctx._probe import ProbedFile, probe_file, unchanged_since_indexed
from imgctx._removed import RemovedDuplicates
from imgctx._types import (
    Annotation,
    BatchReport,
    FailedFile,
    ImageRecord,
    ProcessResult,
    Progress,
    StoredVectors,
    Tag,
)

if TYPE_CHECKING:
    from imgctx._protocols import VectorStore
    from imgctx._settings import Settings

ProgressCallback = Callable[[Progress], None]
log = logging.getLogger(__name__)


def text_document(caption: str | None, tags: Sequence[Tag]) -> str:
    """What the text embedder sees for an image: its caption, then its tag words, the objects
    first and the candidate labels after them."""
    ordered = sorted(tags, key=lambda t: not t.confident)  # stable: keeps each group's order
    words = ", ".join(dict.fromkeys(t.label for t in ordered))
    if caption:
        return f"{caption}. {words}" if words else caption
    return words


def documents(captioner: Any, captions: Sequence[str], tag_lists: Sequence[Sequence[Tag]]) -> list[str]:
    """Text documents for a batch. A caption composed from the tags (``from_tags``) adds no
    information beyond them, only boilerplate, so it is left out."""
    use_caption = not getattr(captioner, "from_tags", False)
    return [
        text_document(c if use_caption else None, tags)
        for c, tags in zip(captions, tag_lists, strict=True)
    ]


def merge_tags(tag_lists: Sequence[Sequence[Tag]]) -> list[Tag]:
    """Several taggers' tags for one image: highest score per label, best first.

    A single tagger's list keeps its own order (labels lower-cased). A label that any tagger is
    confident about is confident.
    """
    if len(tag_lists) == 1:
        return [Tag(t.label.lower(), t.score, t.coarse, t.confident) for t in tag_lists[0]]
    best: dict[str, Tag] = {}
    for tags in tag_lists:
        for t in tags:
            label = t.label.lower()
            old = best.get(label)
            if old is None or (t.confident, t.score) > (old.confident, old.score):
                best[label] = Tag(label, t.score, t.coarse, t.confident)
    return sorted(best.values(), key=lambda t: (not t.confident, -t.score, t.label))


@dataclass
class ModelOutput:
    caption: str
    tags: list[Tag]
    vectors: dict[str, np.ndarray]
    found: Annotation = Annotation()


def run_models(components: Components, images: Sequence[Any], paths: Sequence[str] = (),
               whole: Sequence[Any] | None = None) -> list[ModelOutput]:
    """All models on one batch of RGB images: tags and image vectors (one pass when a backend
    can do both), the annotators (given the files at ``paths``, and the ``whole`` pictures, before
    their borders were trimmed: text or colours can lie in what looks like a border), captions
    (given the tags), text vectors of caption + tags + what the annotators found."""
    n = len(images)
    tag_lists: list[list[list[Tag]]] = []
    vectors: dict[str, np.ndarray] = {}
    embedder = components.image_embedder
    fused = None
    if embedder is not None:
        fused = next((t for t in components.taggers if t is embedder and hasattr(t, "analyze")), None)
    if fused is not None:
        tags, image_vecs = fused.analyze(images)
        tag_lists.append(tags)
        vectors["image"] = image_vecs
    elif embedder is not None:
        vectors["image"] = embedder.embed_images(images)
    for tagger in components.taggers:
        if tagger is not fused:
            tag_lists.append(tagger.tag(images))
    found = annotate_batch(components.annotators, list(whole) if whole is not None else images,
                           list(paths) or [""] * n)
    merged = [with_tags(merge_tags([tl[i] for tl in tag_lists]), found[i].tags) for i in range(n)]
    captions = components.captioner.caption(images, merged) if components.captioner else [""] * n
    if getattr(components.captioner, "from_tags", False):  # a composed caption: add the details
        captions = [", ".join(p for p in (c, caption_details(f)) if p) for c, f in zip(captions, found, strict=True)]
    if components.text_embedder is not None:
        docs = documents(components.captioner, captions, merged)
        extra = [details_words(f.photo, f.text or "", f.colors or (), f.people) for f in found]
        docs = [f"{d}; {e}" if d and e else d or e for d, e in zip(docs, extra, strict=True)]
        vectors["text"] = components.text_embedder.embed_texts(docs)
    return [
        ModelOutput(captions[i], [t for t in merged[i] if t.confident], {s: v[i] for s, v in vectors.items()}, found[i])
        for i in range(n)
    ]


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC)


class Ingest:
    """One multi-file run. Create per run; not thread-safe."""

    def __init__(self, components: Components, store: VectorStore, settings: Settings,
                 ensure_ready: Callable[[], None], removed: RemovedDuplicates | None = None) -> None:
        self.components = components
        self.store = store
        self.settings = settings
        self.ensure_ready = ensure_ready
        self.decode_side = components.decode_side()
        self.removed = removed
        self.prune = True
        self.moved_away: list[str] = []  # records of moved files, deleted after their batch

    def _decode(self, path: str) -> ProbedFile:
        return probe_file(path, self.settings, self.decode_side)

    def _unchanged(self, path: Path, force: bool) -> ImageRecord | None:
        if force:
            return None
        existing = self.store.get_by_path(str(path))
        return existing if unchanged_since_indexed(path, existing) else None

    def run(self, paths: Iterable[str | os.PathLike[str]], force: bool = False,
            progress: ProgressCallback | None = None, raise_errors: bool = False,
            prune: bool = True) -> BatchReport:
        """Index ``paths``. A file whose bytes are those of a record whose file is gone was moved:
        it takes that record's outputs, and with ``prune`` the old record is deleted. Files removed
        as duplicates (``removed``) are left out unless ``force``."""
        start = time.perf_counter()
        self.prune = prune
        all_paths = list(dict.fromkeys(absolute(p) for p in paths))  # each file once
        excluded: list[str] = []
        if self.removed is not None:
            if force:
                self.removed.forget(str(p) for p in all_paths)
            else:
                left_out = self.removed.excluded([str(p) for p in all_paths])
                excluded = [str(p) for p in all_paths if str(p) in left_out]
                all_paths = [p for p in all_paths if str(p) not in left_out]
        total = len(all_paths)
        results: list[ProcessResult] = []
        failed: list[FailedFile] = []
        done = 0

        def report(path: str, status: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(Progress(done, total, path, status))

        def fail(path: str, exc: Exception) -> None:
            if raise_errors:
                raise exc
            reason = exc.reason if isinstance(exc, ImageError) else str(exc)
            log.info("skipping %s: %s", path, reason)  # reported in failed_files: once is enough
            failed.append(FailedFile(path, reason))
            report(path, "failed")

        to_read: list[Path] = []
        for p in all_paths:
            if not _utf8(str(p)):
                fail(str(p), ImageError(p, "the file name is not valid UTF-8; rename the file"))
                continue
            existing = self._unchanged(p, force)
            if existing is not None:
                results.append(ProcessResult(existing, True, True, 0.0))
                report(str(p), "skipped")
            else:
                to_read.append(p)

        batch: list[ProbedFile] = []
        if to_read:
            self.ensure_ready()
        for path, outcome in self._decoded(to_read):
            if isinstance(outcome, Exception):
                fail(str(path), outcome)
                continue
            batch.append(outcome)
            if len(batch) >= self.settings.batch_size:
                for r in self._flush(batch, force, fail, raise_errors):
                    results.append(r)
                    report(r.record.path, "skipped" if r.skipped else "processed")
                batch = []
        if batch:
            for r in self._flush(batch, force, fail, raise_errors):
                results.append(r)
                report(r.record.path, "skipped" if r.skipped else "processed")

        position = {str(p): i for i, p in enumerate(all_paths)}
        results.sort(key=lambda r: position.get(r.record.path, total))  # input order
        processed_ids = tuple(r.record.id for r in results if not r.skipped)
        skipped_ids = tuple(r.record.id for r in results if r.skipped)
        report_ = BatchReport(
            total_files=total, processed=len(processed_ids), skipped=len(skipped_ids),
            failed=len(failed), processed_ids=processed_ids, skipped_ids=skipped_ids,
            failed_files=tuple(failed), processing_time=time.perf_counter() - start,
            results=tuple(results), pruned_ids=tuple(self.moved_away), excluded_files=tuple(excluded),
        )
        log.info("%d files: %d processed, %d unchanged, %d failed in %.2fs", total,
                 report_.processed, report_.skipped, report_.failed, report_.processing_time)
        return report_

    def _decoded(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ProbedFile | Exception]]:
        """Decode in worker threads, yielding in input order with a bounded read-ahead."""
        if not paths:
            return
        window = max(2, 2 * self.settings.batch_size)
        with ThreadPoolExecutor(self.settings.decode_workers, thread_name_prefix="imgctx-decode") as pool:
            pending: list[tuple[Path, Future[ProbedFile]]] = []
            it = iter(paths)
            for p in it:
                pending.append((p, pool.submit(self._decode, str(p))))
                if len(pending) >= window:
                    break
            while pending:
                p, fut = pending.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self._decode, str(nxt))))
                try:
                    yield p, fut.result()
                except ImgctxError as exc:
                    yield p, exc
                except Exception as exc:  # one bad file never stops the run
                    yield p, ImageError(p, f"unexpected error: {type(exc).__name__}: {exc}")

    def _flush(self, batch: list[ProbedFile], force: bool, fail: Callable[[str, Exception], None],
               raise_errors: bool) -> list[ProcessResult]:
        """Commit a batch; if it fails, retry file by file so only the culprit fails."""
        try:
            return self._commit(batch, force)
        except StoreError:
            raise  # the store itself failed (locked, full disk): no use going on file by file
        except Exception as exc:
            if raise_errors:
                raise
            if len(batch) > 1:
                return [r for d in batch for r in self._flush([d], force, fail, raise_errors)]
            if not isinstance(exc, ImgctxError):
                exc = ImageError(batch[0].image.path, f"processing failed: {type(exc).__name__}: {exc}")
            fail(batch[0].image.path, exc)
            return []

    def _commit(self, batch: list[ProbedFile], force: bool) -> list[ProcessResult]:
        """Models on the files that need them, then one store transaction for the batch."""
        t0 = time.perf_counter()
        plans: list[tuple[ProbedFile, ImageRecord | None, ImageRecord | None, str | None,
                          ImageRecord | None]] = []
        claimed: set[str] = set()  # content hashes whose vanished record a file of this batch took
        need: dict[str, int] = {}
        first_in_batch: dict[str, str] = {}
        need_files: list[ProbedFile] = []
        for d in batch:
            img = d.image
            existing = self.store.get_by_path(img.path)
            unchanged = not force and existing is not None and existing.content_hash == img.content_hash
            copies = [c for c in self.store.find_by_hash(img.content_hash) if c.path != img.path]
            moved = None
            if not unchanged and img.content_hash not in claimed:
                moved = next((c for c in copies if not os.path.exists(c.path)), None)
            copy = next((c for c in copies if c is not moved), None)
            if moved is not None:
                claimed.add(img.content_hash)
                first_in_batch.setdefault(img.content_hash, record_id_for(img.path))
            source = existing if unchanged else (None if force else (moved or copy))
            plans.append((d, existing, source, copy.id if copy else None, moved))
            if source is None and img.content_hash not in need:
                need[img.content_hash] = len(need_files)
                need_files.append(d)
                first_in_batch[img.content_hash] = record_id_for(img.path)
        outputs = self._run_models(need_files) if need_files else []
        items: list[StoredVectors] = []
        results: list[ProcessResult] = []
        now = _now()
        for d, existing, source, copy_of, moved in plans:
            img = d.image
            rid = record_id_for(img.path)
            unchanged = source is not None and source is existing
            if source is not None:
                out = ModelOutput(source.caption, list(source.tags), self._stored_vectors(source.id),
                                  Annotation(source.photo, source.text, source.colors, source.people))
            else:
                out = outputs[need[img.content_hash]]
            first = first_in_batch.get(img.content_hash)
            dup_of = None if moved else copy_of or (first if first not in (None, rid) else None)
            same_bytes_here = existing is not None and existing.content_hash == img.content_hash
            was_dup = same_bytes_here or dup_of is not None
            created = existing.created_at if existing else (moved.created_at if moved else now)
            record = ImageRecord(
                id=rid, path=img.path, filename=Path(img.path).name, size=img.size,
                file_size=img.file_size, format=img.format, caption=out.caption,
                objects=tuple(t.label for t in out.tags), content_hash=img.content_hash,
                phash=d.phash, dhash=d.dhash, orient_hashes=d.orient_hashes, created_at=created,
                updated_at=existing.updated_at if (existing and unchanged) else now,
                mtime_ns=img.mtime_ns, tags=tuple(out.tags), photo=out.found.photo,
                text=out.found.text or "", colors=out.found.colors or (), people=out.found.people,
            )
            items.append(StoredVectors(record, out.vectors))
            results.append(ProcessResult(record, was_dup, unchanged, 0.0, dup_of, moved.id if moved else None))
        self.store.upsert(items)
        gone = [m.id for *_, m in plans if m is not None]
        if gone and self.prune:
            self.store.delete(gone)
            self.moved_away.extend(gone)
        per_file = (time.perf_counter() - t0) / max(1, len(batch))
        return [replace(r, processing_time=per_file) for r in results]

    def _run_models(self, files: list[ProbedFile]) -> list[ModelOutput]:
        """The models' outputs for decoded files (here, in this process; the Ray driver looks
        up what its actors computed)."""
        return run_models(self.components, [f.image.image for f in files], [f.image.path for f in files],
                          [f.whole if f.whole is not None else f.image.image for f in files])

    def _stored_vectors(self, record_id: str) -> dict[str, np.ndarray]:
        out = {}
        for space in self.components.spaces():
            vecs = self.store.vectors(space.name, [record_id])
            if record_id in vecs:
                out[space.name] = vecs[record_id]
        return out
