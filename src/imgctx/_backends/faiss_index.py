"""One FAISS index per vector space of the ``faiss`` store: exact (flat inner product) up to a
size limit, approximate (IVF with 8-bit scalar quantised vectors) beyond it, over int64 record
rowids."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from imgctx._errors import MissingDependencyError
from imgctx._types import SpaceSpec

IVF_MIN_POINTS_PER_LIST = 39
#: IVF lists per square root of the vector count (autofaiss-style sizing: 2,000 lists at 1M).
IVF_LISTS_PER_ROOT = 2
#: Share of the lists a query probes (at least IVF_MIN_PROBES): 25 of 2,000 at 1M.
IVF_PROBE_SHARE = 1 / 80
IVF_MIN_PROBES = 8
#: A filtered query probes nprobe / share**IVF_FILTER_EXPONENT lists (share: the part of the
#: records that pass the filter): twice as many lists for 6%, 5.6 times for 0.1%.
IVF_FILTER_EXPONENT = 0.25
#: ... and at least enough lists to hold about this many records that pass it.
IVF_FILTER_MIN_SCANNED = 300
#: k-means iterations when training the IVF quantizer (FAISS's default is 25; 10 reach the
#: same recall here at 40% of the build time: see docs/stores.md).
IVF_TRAIN_ITERATIONS = 10


def ivf_lists(n: int) -> int:
    """How many IVF lists an index of ``n`` vectors gets."""
    return max(1, min(int(IVF_LISTS_PER_ROOT * math.sqrt(n)), n // IVF_MIN_POINTS_PER_LIST))


def ivf_probes(nlist: int) -> int:
    """How many of ``nlist`` lists an unfiltered query probes."""
    return min(nlist, max(IVF_MIN_PROBES, math.ceil(nlist * IVF_PROBE_SHARE)))


def filtered_probes(nlist: int, ntotal: int, allowed: int) -> int:
    """How many lists a query probes when ``allowed`` of the ``ntotal`` records pass its filter:
    more the fewer pass, since the nearest ones that pass lie farther out; each record scanned
    that fails the filter costs only a bit test."""
    share = max(allowed, 1) / max(ntotal, 1)
    by_share = ivf_probes(nlist) / share ** IVF_FILTER_EXPONENT
    by_count = IVF_FILTER_MIN_SCANNED / max(share * ntotal / nlist, 1e-9)
    return min(nlist, math.ceil(max(by_share, by_count)))


@contextlib.contextmanager
def omp_threads(faiss: Any, threads: int) -> Iterator[None]:
    """OpenMP threads for FAISS calls made by this thread inside the block (0: leave as is).
    OpenMP keeps the thread count per calling thread, so other threads are not affected."""
    if threads <= 0:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("the faiss store", "faiss-cpu", "pip install faiss-cpu") from None
    return faiss


class SpaceIndex:
    """One FAISS index over int64 record rowids."""

    def __init__(self, faiss: Any, spec: SpaceSpec, exact_limit: int, search_threads: int = 1) -> None:
        self.faiss = faiss
        self.spec = spec
        self.exact_limit = exact_limit
        self.search_threads = search_threads
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
            # 2 sqrt(n) lists of ~sqrt(n)/2 vectors; FAISS wants at least 39 training points per list.
            nlist = ivf_lists(n)
            quantizer = faiss.IndexFlatIP(dim)
            # 8-bit scalar quantised vectors (SQLite keeps the exact ones): a quarter of the
            # memory of IVFFlat and about twice its speed, scores within ~0.001 of the exact cosine
            index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                  faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = IVF_TRAIN_ITERATIONS
            sample = vecs if n <= 50 * nlist else vecs[np.random.default_rng(0).choice(n, 50 * nlist, replace=False)]
            index.train(sample)
            index.nprobe = ivf_probes(nlist)
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
            params = faiss.SearchParametersIVF(nprobe=ivf_probes(self.index.nlist)) if self.approximate else None
        else:
            selector = selector if selector is not None else faiss.IDSelectorBatch(allowed)
            if self.approximate:
                nprobe = filtered_probes(self.index.nlist, self.ntotal, len(allowed))
                params = faiss.SearchParametersIVF(sel=selector, nprobe=nprobe)
            else:
                params = faiss.SearchParameters(sel=selector)
        # one query gains little from OpenMP threads and a busy server loses by them
        with omp_threads(faiss, self.search_threads):
            sims, ids = self.index.search(q, k, params=params) if params is not None else self.index.search(q, k)
        keep = ids[0] >= 0
        return sims[0][keep], ids[0][keep]
