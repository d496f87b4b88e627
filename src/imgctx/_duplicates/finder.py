"""The duplicate methods of an Extractor (find_duplicates, check_image, compare,
remove_duplicates) over its models and store: files are looked at once (from the store when
indexed and unchanged, else decoded and embedded), then compared, grouped or removed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from imgctx._components import Components
from imgctx._duplicates.grouping import NEIGHBOURS, Items, group_indexes, to_groups
from imgctx._duplicates.removal import delete_files as unlink_files
from imgctx._duplicates.removal import plan_removal
from imgctx._duplicates.similarity import (
    EMBEDDING_SCALE,
    check_keep,
    check_threshold,
    compare_images,
    hash_to_int,
    units_for,
)
from imgctx._errors import ConfigurationError, ImageError, ImgctxError
from imgctx._ids import record_id_for
from imgctx._images import absolute, scan_directory
from imgctx._probe import ProbedFile, probe_file, unchanged_since_indexed
from imgctx._types import (
    Comparison,
    DuplicateGroup,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    RemovalReport,
)

if TYPE_CHECKING:
    from imgctx._protocols import VectorStore
    from imgctx._settings import Settings


@dataclass
class _Probe:
    """One image file looked at outside the store: its hashes and image vector."""

    path: str
    content_hash: str
    phash: str
    dhash: str
    vector: np.ndarray | None
    size: tuple[int, int]
    file_size: int


class Duplicates:
    """find_duplicates / check_image / compare / remove_duplicates over one Extractor's parts."""

    def __init__(self, components: Components, store: VectorStore, settings: Settings,
                 ensure_ready: Callable[[], None]) -> None:
        self.components = components
        self.store = store
        self.settings = settings
        self.ensure_ready = ensure_ready

    @property
    def _embedder(self) -> Any:
        return self.components.image_embedder

    # -- reading files --------------------------------------------------------------------

    def _stored_probe(self, path: str) -> _Probe | None:
        """The store's facts for an indexed, unchanged file (no decoding, no model)."""
        record = self.store.get_by_path(path)
        if record is None or not unchanged_since_indexed(path, record):
            return None
        vector = None
        if self._embedder is not None:
            vector = self.store.vectors("image", [record.id]).get(record.id)
            if vector is None:
                return None
        return _Probe(path, record.content_hash, record.phash, record.dhash, vector, record.size, record.file_size)

    def _decode(self, path: str | os.PathLike[str]) -> ProbedFile:
        return probe_file(path, self.settings, self.components.decode_side())

    @staticmethod
    def _facts(probed: ProbedFile) -> _Probe:
        img = probed.image
        return _Probe(img.path, img.content_hash, probed.phash, probed.dhash, None, img.size, img.file_size)

    def _probe_files(self, paths: Sequence[str | os.PathLike[str]]) -> tuple[list[_Probe], list[FailedFile]]:
        """Hashes and vectors of files, in input order: from the store when indexed and
        unchanged, else decoded (in ``decode_workers`` threads) and embedded in batches."""
        probes: dict[int, _Probe] = {}
        failed: list[FailedFile] = []
        todo: list[tuple[int, str]] = []
        for k, raw in enumerate(paths):
            path = str(absolute(raw))
            stored = self._stored_probe(path)
            if stored is not None:
                probes[k] = stored
            else:
                todo.append((k, path))
        batch = self.settings.batch_size
        with ThreadPoolExecutor(self.settings.decode_workers, thread_name_prefix="imgctx-dup") as pool:
            for start in range(0, len(todo), batch):
                chunk = todo[start:start + batch]
                futures = [pool.submit(self._decode, path) for _, path in chunk]
                images: list[tuple[_Probe, Any]] = []
                for (k, path), fut in zip(chunk, futures, strict=True):
                    try:
                        probed = fut.result()
                    except ImgctxError as exc:
                        failed.append(FailedFile(path, exc.reason if isinstance(exc, ImageError) else str(exc)))
                        continue
                    except Exception as exc:  # one bad file never stops the run
                        failed.append(FailedFile(path, f"unexpected error: {type(exc).__name__}: {exc}"))
                        continue
                    probe = self._facts(probed)
                    probes[k] = probe
                    images.append((probe, probed.image.image))
                self._embed(images)
        return [probes[k] for k in sorted(probes)], failed

    def _embed(self, images: Sequence[tuple[_Probe, Any]]) -> None:
        if self._embedder is None or not images:
            return
        vecs = self._embedder.embed_images([img for _, img in images])
        for (probe, _), v in zip(images, vecs, strict=True):
            probe.vector = np.asarray(v, np.float32)

    def _probe(self, path: str | os.PathLike[str]) -> _Probe:
        """One file, raising its ImageError."""
        stored = self._stored_probe(str(absolute(path)))
        if stored is not None:
            return stored
        probed = self._decode(path)
        probe = self._facts(probed)
        self._embed([(probe, probed.image.image)])
        return probe

    # -- comparison --------------------------------------------------------------------------

    def compare(self, a: str | os.PathLike[str], b: str | os.PathLike[str], threshold: float) -> Comparison:
        threshold = check_threshold(threshold)
        self.ensure_ready()
        pa, pb = self._probe(a), self._probe(b)
        return compare_images(pa, pb, pa.vector, pb.vector, threshold)

    # -- against the store -----------------------------------------------------------------

    def check_image(self, path: str | os.PathLike[str], threshold: float, limit: int) -> list[DuplicateMatch]:
        threshold = check_threshold(threshold)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive integer, got {limit!r}")
        self.ensure_ready()
        return self._matches(self._probe(path), threshold, limit)

    def _matches(self, probe: _Probe, threshold: float, limit: int) -> list[DuplicateMatch]:
        """Stored images (not the probed file's own record) that duplicate it, best first."""
        self_id = record_id_for(probe.path)
        candidates: dict[str, ImageRecord] = {r.id: r for r in self.store.find_by_hash(probe.content_hash)}
        if probe.vector is not None:
            hits = self.store.query("image", probe.vector, max(limit, NEIGHBOURS) + 1)
            min_cos = 1.0 - EMBEDDING_SCALE * units_for(threshold)
            wanted = [rid for rid, sim in hits if sim >= min_cos - 1e-6 and rid not in candidates]
            candidates.update({r.id: r for r in self.store.get_many(wanted)})
        else:  # no vector index to ask: a linear scan of the stored hashes (the fallback)
            for record in self._all_records():
                candidates.setdefault(record.id, record)
        candidates.pop(self_id, None)
        vectors = self.store.vectors("image", list(candidates)) if probe.vector is not None else {}
        matches = []
        for rid, record in candidates.items():
            cmp = compare_images(probe, record, probe.vector, vectors.get(rid), threshold)
            if cmp.is_duplicate:
                matches.append(DuplicateMatch(record, cmp))
        matches.sort(key=lambda m: (-m.comparison.similarity, m.record.path))
        return matches[:limit]

    def _all_records(self, page: int = 1000) -> list[ImageRecord]:
        out: list[ImageRecord] = []
        while True:
            chunk = self.store.list(None, page, len(out))
            out.extend(chunk)
            if len(chunk) < page:
                return out

    def _store_items(self) -> Items:
        """Every stored record with its image vector. A record without one (none should lack it
        when there is an image embedder) gets a zero vector: only its exact copies can match it."""
        records = self._all_records()
        vectors = None
        if self._embedder is not None and records:
            table: dict[str, np.ndarray] = {}
            for s in range(0, len(records), 500):  # SQLite limits the parameters of one query
                table.update(self.store.vectors("image", [r.id for r in records[s:s + 500]]))
            dim = len(next(iter(table.values()))) if table else int(self._embedder.dim)
            vectors = np.zeros((len(records), dim), np.float32)
            for k, r in enumerate(records):
                if r.id in table:
                    vectors[k] = table[r.id]
        return Items.from_records(records, vectors)

    def find_duplicates(self, threshold: float, directory: str | os.PathLike[str] | None,
                        recursive: bool, image: str | os.PathLike[str] | None = None,
                        keep: str = "first") -> DuplicateReport:
        threshold = check_threshold(threshold)
        if image is not None:
            return self._duplicates_of(image, threshold, directory, recursive)
        start = time.perf_counter()
        failed: list[FailedFile] = []
        if directory is None:
            self.ensure_ready()
            items = self._store_items()
        else:
            paths = scan_directory(directory, recursive)
            self.ensure_ready()
            probes, failed = self._probe_files(paths)
            items = self._items_from_probes(probes)
        groups = to_groups(items, group_indexes(items, threshold, check_keep(keep)))
        return DuplicateReport(
            groups=groups, total_images=len(items),
            total_duplicates=sum(len(g.duplicate_ids) for g in groups), threshold=threshold,
            check_time=time.perf_counter() - start, failed_files=tuple(failed),
        )

    def _duplicates_of(self, image: str | os.PathLike[str], threshold: float,
                       directory: str | os.PathLike[str] | None, recursive: bool) -> DuplicateReport:
        """One image against the store or against a folder's files: at most one group, the
        image and every image whose own similarity to it reaches the threshold (not transitive),
        the most similar first."""
        start = time.perf_counter()
        failed: list[FailedFile] = []
        if directory is None:
            self.ensure_ready()
            total = self.store.count()
            target = self._probe(image)
            found = [(m.record, m.comparison) for m in self._matches(target, threshold, max(1, total))]
        else:
            paths = scan_directory(directory, recursive)
            self.ensure_ready()
            target = self._probe(image)
            others = [p for p in paths if str(p) != target.path]
            probes, failed = self._probe_files(others)
            total = len(others) + 1
            found = [(p, compare_images(target, p, target.vector, p.vector, threshold)) for p in probes]
            found = [(p, c) for p, c in found if c.is_duplicate]
            found.sort(key=lambda pc: (-pc[1].similarity, pc[0].path))
        groups: tuple[DuplicateGroup, ...] = ()
        if found:
            groups = (DuplicateGroup(
                representative_id=record_id_for(target.path),
                duplicate_ids=tuple(record_id_for(f.path) for f, _ in found),
                similarity_scores=tuple(round(c.similarity, 6) for _, c in found),
                paths=(target.path, *(f.path for f, _ in found)),
                exact=tuple(c.exact for _, c in found),
            ),)
        return DuplicateReport(
            groups=groups, total_images=total, total_duplicates=len(found), threshold=threshold,
            check_time=time.perf_counter() - start, failed_files=tuple(failed),
        )

    def _items_from_probes(self, probes: Sequence[_Probe]) -> Items:
        vectors = None
        if self._embedder is not None and probes:
            vectors = np.stack([p.vector for p in probes if p.vector is not None]).astype(np.float32)
        n = len(probes)
        return Items(
            ids=[record_id_for(p.path) for p in probes], paths=[p.path for p in probes],
            content=[p.content_hash for p in probes],
            phash=np.fromiter((hash_to_int(p.phash) for p in probes), np.uint64, n),
            dhash=np.fromiter((hash_to_int(p.dhash) for p in probes), np.uint64, n),
            vectors=vectors,
            file_size=np.fromiter((p.file_size for p in probes), np.int64, n),
            pixels=np.fromiter((p.size[0] * p.size[1] for p in probes), np.int64, n),
        )

    def remove_duplicates(self, threshold: float, dry_run: bool, keep: str, delete_files: bool,
                          within: Sequence[str | os.PathLike[str]] | None = None) -> RemovalReport:
        threshold = check_threshold(threshold)
        check_keep(keep)
        report = self.find_duplicates(threshold, None, False, keep=keep)
        records: dict[str, ImageRecord] = {}
        if delete_files:
            ids = [rid for g in report.groups for rid in (g.representative_id, *g.duplicate_ids)]
            for s in range(0, len(ids), 500):
                records.update((r.id, r) for r in self.store.get_many(ids[s:s + 500]))
        plan = plan_removal(report.groups, threshold, delete_files, records, within)
        deleted: list[str] = []
        if not dry_run:
            self.store.delete(plan.removed)
            deleted = unlink_files(plan.to_unlink, plan.failed, within)
        return RemovalReport(
            groups=report.groups, kept_ids=tuple(plan.kept), removed_ids=tuple(plan.removed),
            removed_paths=tuple(plan.removed_paths), dry_run=bool(dry_run), keep=keep, threshold=threshold,
            files_deleted=tuple(deleted), failed_files=tuple(plan.failed), left_ids=tuple(plan.left),
        )
