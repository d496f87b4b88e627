"""One FAISS index per vector space of the ``faiss`` store: exact (flat inner product) up to a
size limit, approximate (IVF) beyond it, over int64 record rowids."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from imgctx._errors import MissingDependencyError
from imgctx._types import SpaceSpec

IVF_MIN_POINTS_PER_LIST = 39


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("the faiss store", "faiss-cpu", "pip install faiss-cpu") from None
    return faiss


class SpaceIndex:
    """One FAISS index over int64 record rowids."""

    def __init__(self, faiss: Any, spec: SpaceSpec, exact_limit: int) -> None:
        self.faiss = faiss
        self.spec = spec
        self.exact_limit = exact_limit
        self.index: Any = None
        self.approximate = False
        self.trained_on = 0

    @property
    def needs_rebuild(self) -> bool:
        """True when the index kind no longer suits its size: flat past the exact-search limit,
        IVF at or below it (shrunk, or the limit was raised), or IVF with four times the vectors
        it was trained on (its lists get too long)."""
        want_approximate = self.ntotal > self.exact_limit and self.ntotal >= IVF_MIN_POINTS_PER_LIST
        if want_approximate != self.approximate:
            return True
        return self.approximate and self.ntotal > 4 * self.trained_on

    def build(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        faiss, dim = self.faiss, self.spec.dim
        n = len(ids)
        if n > self.exact_limit and n >= IVF_MIN_POINTS_PER_LIST:
            # sqrt(n) lists of ~sqrt(n) vectors; FAISS wants at least 39 training points per list.
            nlist = max(1, min(int(math.sqrt(n)), n // IVF_MIN_POINTS_PER_LIST))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vecs if n <= 50 * nlist else vecs[np.random.default_rng(0).choice(n, 50 * nlist, replace=False)]
            index.train(sample)
            index.nprobe = min(nlist, max(8, nlist // 48))  # ~2% of the vectors at 1M, 2.5% at 100k
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
            self.approximate = True
            self.trained_on = n
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            self.approximate = False
        if n:
            index.add_with_ids(vecs, ids)
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def remove(self, ids: Sequence[int]) -> None:
        if ids and self.index.ntotal:
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))

    def add(self, ids: Sequence[int], vecs: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(vecs, np.asarray(ids, dtype=np.int64))

    def search(self, vector: np.ndarray, k: int, allowed: np.ndarray | None,
               selector: Any = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = self.faiss
        q = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        k = min(k, self.ntotal)
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        if allowed is None:
            sims, ids = self.index.search(q, k)
        else:
            selector = selector if selector is not None else faiss.IDSelectorBatch(allowed)
            if self.approximate:
                # Probe more lists the fewer records pass the filter (nprobe / sqrt(share)): the
                # filtered neighbours lie farther out. Records that fail it cost an id lookup.
                share = max(len(allowed), 1) / max(self.ntotal, 1)
                nprobe = min(self.index.nlist, math.ceil(self.index.nprobe / math.sqrt(share)))
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            else:
                params = faiss.SearchParameters(sel=selector)
            sims, ids = self.index.search(q, k, params=params)
        keep = ids[0] >= 0
        return sims[0][keep], ids[0][keep]
