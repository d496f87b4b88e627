"""``memory``: an in-process store for notebooks and tests; nothing is persisted."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from imgctx._backends.store_common import check_spaces, checked_vectors, normalise_objects
from imgctx._filters import RecordFilter
from imgctx._hookspecs import hookimpl
from imgctx._settings import Settings
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors, Tag


class MemoryStore:
    """Records and vectors in dictionaries; exact search with numpy."""

    name = "memory"
    persistent = False  # nothing on disk: what goes with the store stays in memory too

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, ImageRecord] = {}
        self._vectors: dict[str, dict[str, np.ndarray]] = {}
        self._spaces: dict[str, SpaceSpec] = {}
        self._matrices: dict[str, tuple[list[str], np.ndarray]] = {}  # space -> ids, stacked vectors
        self._filter_rows: dict[tuple[Any, ...], np.ndarray] = {}  # (space, where, *labels) -> matrix rows

    def configure(self, spaces: Sequence[SpaceSpec]) -> None:
        with self._lock:
            check_spaces(self._spaces, spaces, "the memory store")
            if not self._spaces:
                self._spaces = {s.name: s for s in spaces}
                self._vectors = {s.name: {} for s in spaces}

    @property
    def spaces(self) -> dict[str, SpaceSpec]:
        return dict(self._spaces)

    def upsert(self, items: Sequence[StoredVectors]) -> None:
        with self._lock:
            self._matrices, self._filter_rows = {}, {}
            checked = [checked_vectors(item, self._spaces, "the memory store", require_all=False)
                       if self._spaces else item.vectors for item in items]  # all or nothing
            for item, vectors in zip(items, checked, strict=True):
                r = item.record
                tags = tuple(Tag(t.label.lower(), t.score, t.coarse) for t in r.tags)
                self._records[r.id] = replace(r, tags=tags, objects=tuple(o.lower() for o in r.objects))
                for space, vec in vectors.items():
                    self._vectors.setdefault(space, {})[item.record.id] = np.asarray(vec, np.float32).reshape(-1)

    def get(self, record_id: str) -> ImageRecord | None:
        with self._lock:
            return self._records.get(record_id)

    def get_many(self, record_ids: Sequence[str]) -> list[ImageRecord]:
        with self._lock:
            return [self._records[i] for i in record_ids if i in self._records]

    def get_by_path(self, path: str) -> ImageRecord | None:
        with self._lock:
            return next((r for r in self._records.values() if r.path == path), None)

    def find_by_hash(self, content_hash: str) -> list[ImageRecord]:
        with self._lock:
            return [r for r in self._records.values() if r.content_hash == content_hash]

    def vectors(self, space: str, record_ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            table = self._vectors.get(space, {})
            return {i: table[i] for i in record_ids if i in table}

    def delete(self, record_ids: Sequence[str]) -> int:
        with self._lock:
            self._matrices, self._filter_rows = {}, {}
            n = 0
            for rid in record_ids:
                if self._records.pop(rid, None) is not None:
                    n += 1
                for table in self._vectors.values():
                    table.pop(rid, None)
            return n

    @staticmethod
    def _passes(record: ImageRecord, wanted: Sequence[str] | None, where: RecordFilter | None) -> bool:
        if wanted is not None and not set(wanted).intersection(o.lower() for o in record.objects):
            return False
        return where is None or where.matches(record)

    def _matching(self, objects: Sequence[str] | None, where: RecordFilter | None = None) -> list[ImageRecord]:
        wanted = normalise_objects(objects)
        with self._lock:
            records = list(self._records.values())
        return [r for r in records if self._passes(r, wanted, where)]

    def list(self, objects: Sequence[str] | None = None, limit: int = 100, offset: int = 0,
             where: RecordFilter | None = None) -> list[ImageRecord]:
        return self._matching(objects, where)[offset: offset + limit]

    def count(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None) -> int:
        return len(self._matching(objects, where))

    def object_counts(self) -> dict[str, int]:
        with self._lock:
            records = list(self._records.values())
        counts: dict[str, int] = {}
        for r in records:
            for label in set(r.objects):
                counts[label] = counts.get(label, 0) + 1
        return counts

    def query(
        self, space: str, vector: np.ndarray, k: int, objects: Sequence[str] | None = None,
        where: RecordFilter | None = None,
    ) -> builtins.list[tuple[str, float]]:
        with self._lock:  # one consistent snapshot of ids and vectors, stacked once per write
            if space not in self._matrices:
                table = self._vectors.get(space, {})
                ids = list(table)
                self._matrices[space] = (ids, np.stack([table[i] for i in ids]) if ids else np.zeros((0, 0), np.float32))
            ids, matrix = self._matrices[space]
            wanted = normalise_objects(objects)
            rows: np.ndarray | None = None
            if wanted is not None or where is not None:
                key = (space, where, *(wanted or ()))
                rows = self._filter_rows.get(key)
                if rows is None:  # the matrix rows of matching records, kept until the next write
                    records = self._records
                    rows = np.fromiter(
                        (j for j, rid in enumerate(ids) if rid in records and self._passes(records[rid], wanted, where)),
                        dtype=np.int64,
                    )
                    if len(self._filter_rows) >= 64:
                        self._filter_rows.clear()
                    self._filter_rows[key] = rows
        if not ids or k <= 0 or (rows is not None and not len(rows)):
            return []
        sims = (matrix if rows is None else matrix[rows]) @ np.asarray(vector, np.float32).reshape(-1)
        top = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        order = top[np.argsort(-sims[top], kind="stable")]
        picked = order if rows is None else rows[order]
        return [(ids[j], float(sims[o])) for j, o in zip(picked, order, strict=True)]

    def close(self) -> None:
        return None


def memory_factory(settings: Settings) -> MemoryStore:
    return MemoryStore()


@hookimpl
def register_stores(register: Any) -> None:
    register("memory", memory_factory)
