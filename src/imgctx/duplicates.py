"""Exact and near-duplicate detection: pairwise comparison and grouping that scales.

The combined similarity
-----------------------
Two images are compared by three metrics: the Hamming distances ``dp`` and ``dd`` (0-64) of their
64-bit pHash and dHash, and the cosine ``cos`` of their image vectors. Each becomes a distance
measured in units of "how far a near-duplicate may go", and the units add up::

    x_hash = ((dp + dd) / 2) / HASH_SCALE          (HASH_SCALE = 24 bits)
    x_emb  = (1 - cos) / EMBEDDING_SCALE           (EMBEDDING_SCALE = 0.5)
    similarity = max(0, 1 - 0.05 * (x_hash + x_emb) ** 2)

so ``similarity`` is 1.0 for identical pixels, 0.95 (the default threshold) where the summed
distance reaches one unit, 0.98 (the default for removal) at 0.63 units, and falls towards 0 for
unrelated images. Byte-identical files (same SHA-256) score exactly 1.0. Without an image
embedder the hashes must carry the verdict alone and are scaled more strictly:
``x_hash = ((dp + dd) / 2) / HASH_ONLY_SCALE`` (17 bits), ``similarity = max(0, 1 - 0.05 *
x_hash ** 2)``. The constants were chosen on a calibration run of ``benchmarks/duplicates.py``
(see docs/duplicates.md).

Scale
-----
Grouping never builds an n x n matrix. Candidate pairs come from (1) the content hash (exact
copies), (2) the vector index: each image's ``k`` nearest neighbours, kept if their cosine can
still reach the threshold, and (3) a multi-index hash table: the 128 hash bits cut into eight
16-bit chunks, two images being candidates when one chunk is equal (every pair within 7 bits in
total is found, and most within about 12). Candidates are scored exactly, pairs at or above the
threshold are joined with union-find, and each group's representative is chosen by a keep
policy. Memory is linear in the number of images (``k`` pairs per image at most per source).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgctx.errors import ConfigurationError, ImageError, ImgctxError
from imgctx.images import absolute, load_image, perceptual_hashes, scan_directory
from imgctx.pipeline import record_id_for
from imgctx.types import (
    Comparison,
    DuplicateGroup,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    RemovalReport,
)

if TYPE_CHECKING:
    from imgctx.extractor import Components
    from imgctx.protocols import VectorStore
    from imgctx.settings import Settings

#: The default ``threshold`` of find_duplicates, check_image and compare (the contract's example).
DEFAULT_THRESHOLD = 0.95
#: The default ``threshold`` of remove_duplicates (the contract's default): stricter, as it deletes.
REMOVE_THRESHOLD = 0.98
#: Hash distance (mean of the pHash and dHash Hamming distances) worth one unit.
HASH_SCALE = 24.0
#: Hash distance worth one unit when there are no image vectors (the hashes decide alone).
HASH_ONLY_SCALE = 17.0
#: Cosine distance (1 - cos) worth one unit.
EMBEDDING_SCALE = 0.5
#: similarity = 1 - CURVE * units**2.
CURVE = 0.05
#: Keep policies of remove_duplicates (and how a group's representative is chosen).
KEEP_POLICIES = ("first", "largest", "highest-resolution")
#: Dimensions the vectors are projected to for the approximate neighbour search of large sets.
SEARCH_DIM = 128
#: Nearest neighbours fetched per image from the vector index.
NEIGHBOURS = 24
#: A hash bucket larger than this (e.g. thousands of blank images) only links each member to
#: its next few members in hash order, so a degenerate bucket cannot make the pair count explode.
BUCKET_LIMIT = 64
_WINDOW = 8
_PAIR_BLOCK = 8192
_SEARCH_MARGIN = 0.25


# -- the combined similarity -------------------------------------------------------------------


def similarity_from_units(units: np.ndarray | float) -> np.ndarray:
    """``max(0, 1 - CURVE * units**2)``, elementwise."""
    u = np.asarray(units, dtype=np.float64)
    return np.clip(1.0 - CURVE * u * u, 0.0, 1.0)


def units_for(threshold: float) -> float:
    """The largest summed distance (in units) whose similarity still reaches ``threshold``."""
    return float(np.sqrt(max(0.0, 1.0 - threshold) / CURVE))


def hash_units(phash_distance: np.ndarray | int, dhash_distance: np.ndarray | int,
               scale: float = HASH_SCALE) -> np.ndarray:
    return (np.asarray(phash_distance, np.float64) + np.asarray(dhash_distance, np.float64)) / 2.0 / scale


def embedding_units(cosine: np.ndarray | float) -> np.ndarray:
    return np.clip(1.0 - np.asarray(cosine, np.float64), 0.0, 2.0) / EMBEDDING_SCALE


def combined_similarity(phash_distance: np.ndarray | int, dhash_distance: np.ndarray | int,
                        cosine: np.ndarray | float | None = None) -> np.ndarray:
    """The documented combined similarity in [0, 1] (see the module docstring); without a
    ``cosine``, the hash-only similarity."""
    if cosine is None:
        return similarity_from_units(hash_units(phash_distance, dhash_distance, HASH_ONLY_SCALE))
    return similarity_from_units(hash_units(phash_distance, dhash_distance) + embedding_units(cosine))


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise ConfigurationError(f"threshold must be a number, got {threshold!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigurationError(f"threshold must be between 0 and 1, got {threshold}")
    return float(threshold)


def check_keep(keep: str) -> str:
    if keep not in KEEP_POLICIES:
        raise ConfigurationError(f"unknown keep policy {keep!r}; known: {', '.join(KEEP_POLICIES)}")
    return keep


def hash_to_int(hex_hash: str) -> int:
    """A 64-bit hex hash as an unsigned integer (0 for an empty or malformed hash)."""
    try:
        return int(hex_hash, 16) & 0xFFFF_FFFF_FFFF_FFFF
    except (TypeError, ValueError):
        return 0


def popcount(x: np.ndarray | np.integer[Any] | int) -> np.ndarray:
    """Set bits per uint64 element."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)  # numpy < 2.0
    return _BYTE_BITS[as_bytes].sum(axis=-1)


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


# -- the items being grouped ---------------------------------------------------------------------


@dataclass
class Items:
    """Column arrays for the images being grouped, in keep-"first" order."""

    ids: list[str]
    paths: list[str]
    content: list[str]
    phash: np.ndarray  # uint64
    dhash: np.ndarray  # uint64
    vectors: np.ndarray | None  # (n, dim) float32, L2-normalised; None: hashes only
    file_size: np.ndarray  # int64
    pixels: np.ndarray  # int64 (width * height)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_records(cls, records: Sequence[ImageRecord], vectors: np.ndarray | None) -> Items:
        return cls(
            ids=[r.id for r in records], paths=[r.path for r in records],
            content=[r.content_hash for r in records],
            phash=np.fromiter((hash_to_int(r.phash) for r in records), np.uint64, len(records)),
            dhash=np.fromiter((hash_to_int(r.dhash) for r in records), np.uint64, len(records)),
            vectors=vectors,
            file_size=np.fromiter((r.file_size for r in records), np.int64, len(records)),
            pixels=np.fromiter((r.size[0] * r.size[1] for r in records), np.int64, len(records)),
        )

    def score(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Combined similarity of the pairs (i[k], j[k]), exact copies scoring 1.0."""
        out = np.empty(len(i), dtype=np.float64)
        for s in range(0, len(i), _PAIR_BLOCK):
            a, b = i[s:s + _PAIR_BLOCK], j[s:s + _PAIR_BLOCK]
            dp = popcount(self.phash[a] ^ self.phash[b])
            dd = popcount(self.dhash[a] ^ self.dhash[b])
            cos = None if self.vectors is None else np.einsum("ij,ij->i", self.vectors[a], self.vectors[b])
            out[s:s + _PAIR_BLOCK] = combined_similarity(dp, dd, cos)
        codes = self.content_codes
        out[codes[i] == codes[j]] = 1.0
        return out

    @functools.cached_property
    def content_codes(self) -> np.ndarray:
        """One integer per distinct content hash (equal bytes, equal code)."""
        return np.unique(np.asarray(self.content, dtype=str), return_inverse=True)[1].reshape(-1)


# -- candidate pairs -------------------------------------------------------------------------------

def knn(vectors: np.ndarray, k: int, exact_limit: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest rows by inner product: (sims, indexes), -1 where none.

    Exact (FAISS flat) up to ``exact_limit`` rows. Beyond, approximate: the vectors are
    projected to ``SEARCH_DIM`` dimensions by a fixed random Gaussian matrix (which keeps inner
    products up to a small error), and searched with an IVF index (2 sqrt(n) lists, 8 probed).
    Only the choice of candidates is approximate; they are scored with the full vectors.
    """
    import faiss

    n, dim = vectors.shape
    k = min(k, n)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    index: Any
    if n > exact_limit:
        if dim > SEARCH_DIM:
            rng = np.random.default_rng(0)
            projection = (rng.standard_normal((dim, SEARCH_DIM)) / np.sqrt(SEARCH_DIM)).astype(np.float32)
            x = np.concatenate([x[s:s + 16384] @ projection for s in range(0, n, 16384)])
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            dim = SEARCH_DIM
        nlist = max(1, min(int(2 * np.sqrt(n)), n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        sample = x if n <= 39 * nlist else x[np.random.default_rng(0).choice(n, 39 * nlist, replace=False)]
        index.train(sample)
        index.nprobe = min(nlist, 8)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(x)
    sims = np.empty((n, k), np.float32)
    idx = np.empty((n, k), np.int64)
    for s in range(0, n, 8192):
        sims[s:s + 8192], idx[s:s + 8192] = index.search(x[s:s + 8192], k)
    return sims, idx


def _unique_pairs(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    keep = i != j
    lo, hi = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    keys = np.unique(lo.astype(np.int64) * n + hi)
    return keys // n, keys % n


def vector_candidates(items: Items, threshold: float, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Pairs among each image's ``k`` nearest neighbours whose cosine can still reach the threshold."""
    if items.vectors is None or len(items) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    min_cos = 1.0 - EMBEDDING_SCALE * units_for(threshold)
    sims, idx = knn(items.vectors, k + 1)
    rows = np.repeat(np.arange(len(items)), idx.shape[1])
    cols, s = idx.ravel(), sims.ravel()
    keep = (cols >= 0) & (s >= min_cos - _SEARCH_MARGIN)  # approximate sims: keep a margin
    return _unique_pairs(rows[keep], cols[keep], len(items))


def hash_candidates(items: Items) -> tuple[np.ndarray, np.ndarray]:
    """Multi-index hashing: pairs that agree exactly on one of the eight 16-bit hash chunks."""
    n = len(items)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    for h in (items.phash, items.dhash):
        for c in range(4):
            key = ((h >> np.uint64(16 * c)) & np.uint64(0xFFFF)).astype(np.int64)
            order = np.lexsort((h, key))  # by chunk, then by the whole hash
            sk = key[order]
            starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
            sizes = np.diff(np.r_[starts, n])
            for w in range(1, _WINDOW + 1):  # each member with the next w-th member of its bucket
                a = np.arange(n - w)
                same = sk[a] == sk[a + w]
                out_i.append(order[a[same]])
                out_j.append(order[a[same] + w])
            for st, size in zip(starts[sizes > _WINDOW + 1], sizes[sizes > _WINDOW + 1], strict=True):
                if size > BUCKET_LIMIT:
                    continue  # degenerate bucket: the window above already links neighbours in hash order
                members = order[st:st + size]
                a, b = np.triu_indices(size, _WINDOW + 1)
                out_i.append(members[a])
                out_j.append(members[b])
    if not out_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return _unique_pairs(np.concatenate(out_i), np.concatenate(out_j), n)


def exact_candidates(items: Items) -> tuple[np.ndarray, np.ndarray]:
    """Byte-identical files: each member of a content-hash group linked to the first."""
    first: dict[str, int] = {}
    i: list[int] = []
    j: list[int] = []
    for k, h in enumerate(items.content):
        if h in first:
            i.append(first[h])
            j.append(k)
        else:
            first[h] = k
    return np.asarray(i, np.int64), np.asarray(j, np.int64)


# -- grouping ----------------------------------------------------------------------------------


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def roots(self) -> np.ndarray:
        """Each element's set, as its root."""
        parent = self.parent.copy()
        while True:  # pointer jumping, all elements at once
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent
            parent = grand

    def components(self) -> list[list[int]]:
        """Sets of two or more members, each sorted, ordered by their smallest member."""
        roots = self.roots()
        order = np.argsort(roots, kind="stable")
        cuts = np.flatnonzero(np.diff(roots[order])) + 1
        sets = [m.tolist() for m in np.split(order, cuts) if len(m) > 1]
        return sorted(sets, key=lambda m: m[0])


def _keep_key(items: Items, keep: str) -> Callable[[int], tuple[int, ...]]:
    if keep == "largest":
        return lambda x: (-int(items.file_size[x]), -int(items.pixels[x]), x)
    if keep == "highest-resolution":
        return lambda x: (-int(items.pixels[x]), -int(items.file_size[x]), x)
    return lambda x: (x,)


def group_indexes(items: Items, threshold: float, keep: str = "first",
                  k: int = NEIGHBOURS) -> list[tuple[int, list[int], list[float]]]:
    """Groups as (representative, other members, their similarity to the representative),
    indexes into ``items``; groups ordered by their representative."""
    n = len(items)
    parts = [exact_candidates(items), hash_candidates(items),
             vector_candidates(items, threshold, k)]
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    i, j = _unique_pairs(i, j, max(n, 1)) if len(i) else (i, j)
    uf = UnionFind(n)
    if len(i):
        scores = items.score(i, j)
        hit = scores >= threshold
        for a, b in zip(i[hit].tolist(), j[hit].tolist(), strict=True):
            uf.union(a, b)
    key = _keep_key(items, keep)
    chosen = []
    for members in uf.components():
        rep = min(members, key=key)
        chosen.append((rep, [m for m in members if m != rep]))
    reps = np.asarray([rep for rep, rest in chosen for _ in rest], np.int64)
    others = np.asarray([m for _, rest in chosen for m in rest], np.int64)
    flat = items.score(reps, others).tolist() if len(reps) else []
    groups = []
    pos = 0
    for rep, rest in chosen:
        groups.append((rep, rest, flat[pos:pos + len(rest)]))
        pos += len(rest)
    groups.sort(key=lambda g: g[0])
    return groups


def to_groups(items: Items, indexed: Sequence[tuple[int, list[int], list[float]]]) -> tuple[DuplicateGroup, ...]:
    return tuple(
        DuplicateGroup(
            representative_id=items.ids[rep],
            duplicate_ids=tuple(items.ids[m] for m in rest),
            similarity_scores=tuple(round(s, 6) for s in scores),
            paths=(items.paths[rep], *(items.paths[m] for m in rest)),
            exact=tuple(items.content[m] == items.content[rep] for m in rest),
        )
        for rep, rest, scores in indexed
    )


_CHANGED = "changed"


def _changed_since_indexed(path: str, record: ImageRecord | None) -> bool:
    """True when the file is gone or its size or modification time differ from the record's."""
    try:
        st = os.stat(path)
    except OSError:
        return True
    if record is None:
        return False
    return st.st_size != record.file_size or bool(record.mtime_ns and st.st_mtime_ns != record.mtime_ns)


def _deletion_refusal(path: str, keep_path: str, record: ImageRecord | None) -> str | None:
    """Why the file of a removed duplicate must not be deleted, or None when it may be.

    ``_CHANGED`` when the file differs from what was indexed (its record stays too); a reason
    for a symbolic link or a path that is the kept file itself (the record goes, the file stays).
    """
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
    if record is not None and (st.st_size != record.file_size
                               or (record.mtime_ns and st.st_mtime_ns != record.mtime_ns)):
        return _CHANGED
    return None


# -- the Extractor's duplicate methods -------------------------------------------------------------


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
        if record is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if st.st_size != record.file_size or st.st_mtime_ns != record.mtime_ns:
            return None
        vector = None
        if self._embedder is not None:
            vector = self.store.vectors("image", [record.id]).get(record.id)
            if vector is None:
                return None
        return _Probe(path, record.content_hash, record.phash, record.dhash, vector, record.size, record.file_size)

    def _decode(self, path: str) -> tuple[Any, str, str]:
        s = self.settings
        img = load_image(path, s.max_image_pixels, s.max_file_bytes, self.components.decode_side())
        ph, dh = perceptual_hashes(img.image)
        return img, ph, dh

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
                        img, ph, dh = fut.result()
                    except ImgctxError as exc:
                        failed.append(FailedFile(path, exc.reason if isinstance(exc, ImageError) else str(exc)))
                        continue
                    except Exception as exc:  # one bad file never stops the run
                        failed.append(FailedFile(path, f"unexpected error: {type(exc).__name__}: {exc}"))
                        continue
                    probe = _Probe(img.path, img.content_hash, ph, dh, None, img.size, img.file_size)
                    probes[k] = probe
                    images.append((probe, img.image))
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
        s = self.settings
        img = load_image(path, s.max_image_pixels, s.max_file_bytes, self.components.decode_side())
        ph, dh = perceptual_hashes(img.image)
        vec = None
        if self._embedder is not None:
            vec = np.asarray(self._embedder.embed_images([img.image])[0], np.float32)
        return _Probe(img.path, img.content_hash, ph, dh, vec, img.size, img.file_size)

    # -- comparison --------------------------------------------------------------------------

    @staticmethod
    def _comparison(a: _Probe | ImageRecord, b: _Probe | ImageRecord, va: np.ndarray | None,
                    vb: np.ndarray | None, threshold: float) -> Comparison:
        dp = int(popcount(np.uint64(hash_to_int(a.phash) ^ hash_to_int(b.phash))))
        dd = int(popcount(np.uint64(hash_to_int(a.dhash) ^ hash_to_int(b.dhash))))
        cos = None if va is None or vb is None else float(np.clip(np.dot(va, vb), -1.0, 1.0))
        hash_sim = float(similarity_from_units(hash_units(dp, dd, HASH_ONLY_SCALE)))
        emb_sim = None if cos is None else float(similarity_from_units(embedding_units(cos)))
        exact = a.content_hash == b.content_hash
        sim = 1.0 if exact else float(combined_similarity(dp, dd, cos))
        return Comparison(
            similarity=sim, is_duplicate=sim >= threshold, threshold=threshold, exact=exact,
            phash_distance=dp, dhash_distance=dd, hash_similarity=hash_sim,
            embedding_cosine=cos, embedding_similarity=emb_sim,
        )

    def compare(self, a: str | os.PathLike[str], b: str | os.PathLike[str], threshold: float) -> Comparison:
        threshold = check_threshold(threshold)
        self.ensure_ready()
        pa, pb = self._probe(a), self._probe(b)
        return self._comparison(pa, pb, pa.vector, pb.vector, threshold)

    # -- against the store -----------------------------------------------------------------

    def check_image(self, path: str | os.PathLike[str], threshold: float, limit: int) -> list[DuplicateMatch]:
        threshold = check_threshold(threshold)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"limit must be a positive integer, got {limit!r}")
        self.ensure_ready()
        probe = self._probe(path)
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
            cmp = self._comparison(probe, record, probe.vector, vectors.get(rid), threshold)
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
                        recursive: bool, keep: str = "first") -> DuplicateReport:
        threshold = check_threshold(threshold)
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

    def remove_duplicates(self, threshold: float, dry_run: bool, keep: str, delete_files: bool) -> RemovalReport:
        threshold = check_threshold(threshold)
        check_keep(keep)
        report = self.find_duplicates(threshold, None, False, keep)
        records: dict[str, ImageRecord] = {}
        if delete_files:
            ids = [rid for g in report.groups for rid in (g.representative_id, *g.duplicate_ids)]
            for s in range(0, len(ids), 500):
                records.update((r.id, r) for r in self.store.get_many(ids[s:s + 500]))
        kept: list[str] = []
        removed: list[str] = []
        removed_paths: list[str] = []
        to_unlink: list[str] = []
        left: list[str] = []
        failed: list[FailedFile] = []
        for g in report.groups:
            kept.append(g.representative_id)
            keep_path = g.paths[0]
            members = list(zip(g.duplicate_ids, g.paths[1:], g.similarity_scores, strict=True))
            if delete_files and _changed_since_indexed(keep_path, records.get(g.representative_id)):
                # deleting the copies could lose the only copy of what the record describes
                for rid, path, _ in members:
                    left.append(rid)
                    failed.append(FailedFile(path, f"left in place: the kept file {keep_path} is missing "
                                                   "or changed since it was indexed"))
                continue
            for rid, path, score in members:
                if score < threshold:
                    # grouped only through another member: not itself a duplicate of the kept image
                    left.append(rid)
                    continue
                if delete_files:
                    refusal = _deletion_refusal(path, keep_path, records.get(rid))
                    if refusal == _CHANGED:
                        left.append(rid)
                        failed.append(FailedFile(path, "left in place: changed since it was indexed"))
                        continue
                    if refusal is not None:
                        failed.append(FailedFile(path, refusal))
                    else:
                        to_unlink.append(path)
                removed.append(rid)
                removed_paths.append(path)
        deleted: list[str] = []
        if not dry_run:
            self.store.delete(removed)
            for p in to_unlink:
                try:
                    Path(p).unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    failed.append(FailedFile(p, f"cannot delete file: {exc.strerror or exc}"))
                    continue
                deleted.append(p)
        return RemovalReport(
            groups=report.groups, kept_ids=tuple(kept), removed_ids=tuple(removed),
            removed_paths=tuple(removed_paths), dry_run=bool(dry_run), keep=keep, threshold=threshold,
            files_deleted=tuple(deleted), failed_files=tuple(failed), left_ids=tuple(left),
        )
