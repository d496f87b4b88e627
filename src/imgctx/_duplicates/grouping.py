"""Grouping that scales: candidate pairs without an n x n matrix, scored exactly, joined
with union-find.

Candidate pairs come from (1) the content hash (exact copies), (2) the vector index: each
image's ``k`` nearest neighbours, kept if their cosine can still reach the threshold or the
geometric check, (3) a multi-index hash table: the 128 hash bits cut into eight 16-bit chunks,
two images being candidates when one chunk is equal (every pair within 7 bits in total is found,
and most within about 12), and (4) the same table between each image's turned pHash and the
others' upright ones. Candidates are scored exactly and weighed by the rule of
:mod:`.evidence` (the geometric check where a ``features`` source is given). Pairs at or above
the threshold are joined with union-find, the strongest first; two groups of two or more images
are joined only by a certain pair (``CERTAIN``) or by two pairs that share no image, never
through one weak link.
Each group's representative is chosen by a keep policy. Memory is linear in the number of images
(``k`` pairs per image at most per source).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgctx._duplicates import evidence
from imgctx._duplicates.geometry import Features, match
from imgctx._duplicates.similarity import (
    EMBEDDING_SCALE,
    combined_similarity,
    hash_to_int,
    popcount,
    units_for,
)
from imgctx._fingerprint import parse_orient_hashes
from imgctx._types import DuplicateGroup, ImageRecord

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
    orient: np.ndarray | None = None  # (n, 16) uint64 orientation hashes, zero rows where unknown

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
            orient=parse_orient_hashes([r.orient_hashes for r in records]),
        )

    def weigh(self, i: np.ndarray, j: np.ndarray, mirrors: bool) -> tuple[np.ndarray, ...]:
        """Evidence for the pairs (i[k], j[k]) without the geometric check: (similarity, reason,
        orientation, cosine or None, closest hash distance in bits over orientations)."""
        codes = self.content_codes
        exact = codes[i] == codes[j]
        cos = None if self.vectors is None else self.cosines(i, j)
        dp, dd = popcount(self.phash[i] ^ self.phash[j]), popcount(self.dhash[i] ^ self.dhash[j])
        up = combined_similarity(dp, dd, cos)  # what score() gives, with the cosines computed once
        up[exact] = 1.0
        up_bits = (dp + dd) / 2.0
        turn = np.zeros(len(i))
        turn_t = np.zeros(len(i), np.int64)
        bits = up_bits
        if self.orient is not None and len(i):
            turn_bits = np.empty(len(i))
            for s in range(0, len(i), _PAIR_BLOCK):  # (block, 16) hash rows at a time
                a, b = i[s:s + _PAIR_BLOCK], j[s:s + _PAIR_BLOCK]
                turn[s:s + _PAIR_BLOCK], turn_t[s:s + _PAIR_BLOCK], turn_bits[s:s + _PAIR_BLOCK] = (
                    evidence.turned_scores(self.orient[a], self.orient[b], mirrors))
            bits = np.minimum(up_bits, turn_bits)
        sim = np.maximum(up, turn)
        reason = np.where(exact, evidence.EXACT, np.where(turn > up, evidence.TURNED, evidence.UPRIGHT))
        reason = np.where(sim > 0, reason, evidence.NO_MATCH)
        return sim, reason, np.where(reason == evidence.TURNED, turn_t, 0), cos, bits

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

    def cosines(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Cosines of the pairs' image vectors, a block of pairs at a time."""
        assert self.vectors is not None
        out = np.empty(len(i), dtype=np.float32)
        for s in range(0, len(i), _PAIR_BLOCK):
            a, b = i[s:s + _PAIR_BLOCK], j[s:s + _PAIR_BLOCK]
            out[s:s + _PAIR_BLOCK] = np.einsum("ij,ij->i", self.vectors[a], self.vectors[b])
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


def vector_candidates(items: Items, threshold: float, k: int = NEIGHBOURS,
                      verify: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pairs among each image's ``k`` nearest neighbours whose cosine can still reach the
    threshold (or, with ``verify``, the geometric check)."""
    if items.vectors is None or len(items) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    min_cos = 1.0 - EMBEDDING_SCALE * units_for(threshold)
    if verify:
        min_cos = min(min_cos, evidence.VERIFY_COS)
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


def turned_candidates(items: Items, mirrors: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairs where a 16-bit chunk of one image's turned pHash equals the same chunk of another's
    upright one (multi-index hashing across orientations: every pair within 3 bits is found)."""
    n = len(items)
    if n < 2 or items.orient is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    known = np.flatnonzero(items.orient.any(axis=1))
    out_i: list[np.ndarray] = []
    out_j: list[np.ndarray] = []
    for base in (0,):  # the pHash: the dHash's chunks would double the chance pairs for little
        upright = items.orient[known, base]
        for c in range(4):
            key = ((upright >> np.uint64(16 * c)) & np.uint64(0xFFFF)).astype(np.int64)
            order = np.argsort(key, kind="stable")
            sk = key[order]
            for t in evidence.turned_orientations(mirrors):
                probe = ((items.orient[known, base + t] >> np.uint64(16 * c)) & np.uint64(0xFFFF)).astype(np.int64)
                lo = np.searchsorted(sk, probe, "left")
                hi = np.searchsorted(sk, probe, "right")
                count = np.where(hi - lo <= BUCKET_LIMIT, hi - lo, 0)  # degenerate buckets: skipped
                rows = np.repeat(np.arange(len(known)), count)
                offs = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
                a, b = known[rows], known[order[np.repeat(lo, count) + offs]]
                close = popcount(items.orient[a, t] ^ items.orient[b, 0]) <= evidence.VERIFY_BITS + 4
                out_i.append(a[close])  # chance pairs (one equal chunk, the rest far) dropped here
                out_j.append(b[close])
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


def _checked(items: Items, i: np.ndarray, j: np.ndarray, threshold: float, mirrors: bool,
             features: Callable[[int], Features | None] | None) -> tuple[np.ndarray, dict[tuple[int, int], float]]:
    """Similarities of the candidate pairs after the geometric check where the rule asks for it
    (and ``features`` can give both pictures), and the checked pairs' outcomes.

    Pairs to confirm (at or above the threshold, not certain) are checked first. Pairs to rescue
    are then taken the closest image vectors first (the closest hashes without vectors), skipping those
    whose images the pairs found so far already join, at most ``VERIFY_PER_IMAGE`` checks per
    image: the checks go to the images that are still apart. A second round takes the pairs
    left unchecked by their combined similarity (hashes and vectors together), at most
    ``VERIFY_EXTRA`` more per image: a copy whose look-alikes (other tiles of one telescope
    image, sharing its watermark) are closer by vector than its own original still gets that
    original checked."""
    sim, reason, _, cos, bits = items.weigh(i, j, mirrors)
    checked: dict[tuple[int, int], float] = {}
    if features is None or not len(i):
        return sim, checked
    codes = items.content_codes
    rescue, confirm = evidence.needs_check(sim, cos, bits, threshold, codes[i] == codes[j])

    def check(x: int) -> None:
        fa, fb = features(int(i[x])), features(int(j[x]))
        if fa is None or fb is None:
            return
        sim[x], _ = evidence.apply_check(float(sim[x]), int(reason[x]), match(fa, fb))
        checked[(int(i[x]), int(j[x]))] = float(sim[x])

    for x in np.flatnonzero(confirm).tolist():
        check(x)
    rescue_at = np.flatnonzero(rescue)
    closeness = -bits[rescue_at] if cos is None else cos[rescue_at]
    rescue_at = rescue_at[np.argsort(-closeness, kind="stable")]
    by_similarity = rescue_at[np.argsort(-sim[rescue_at], kind="stable")]
    done: set[int] = set()
    for order, budget in ((rescue_at, evidence.VERIFY_PER_IMAGE), (by_similarity, evidence.VERIFY_EXTRA)):
        joined = link(len(items), i, j, sim, threshold)  # what the pairs found so far join
        per_image: Counter[int] = Counter()
        for x in order.tolist():  # the most plausible first, a few per image
            a, b = int(i[x]), int(j[x])
            if x in done or joined.find(a) == joined.find(b):
                continue
            if per_image[a] < budget and per_image[b] < budget:
                per_image[a] += 1
                per_image[b] += 1
                done.add(x)
                check(x)
    return sim, checked


def link(n: int, i: np.ndarray, j: np.ndarray, scores: np.ndarray, threshold: float) -> UnionFind:
    """Union-find over the pairs at or above the threshold, the strongest first; two groups of
    two or more join only through a certain pair or through two pairs that share no image."""
    uf = UnionFind(n)
    hit = np.flatnonzero(scores >= threshold)
    hit = hit[np.argsort(-scores[hit], kind="stable")]
    deferred: list[tuple[int, int]] = []
    for x in hit.tolist():
        a, b = int(i[x]), int(j[x])
        ra, rb = uf.find(a), uf.find(b)
        if ra == rb:
            continue
        if scores[x] >= evidence.CERTAIN or uf.size[ra] == 1 or uf.size[rb] == 1:
            uf.union(a, b)
        else:
            deferred.append((a, b))
    changed = True
    while changed and deferred:
        changed = False
        links: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for a, b in deferred:
            ra, rb = uf.find(a), uf.find(b)
            if ra != rb:
                links.setdefault((ra, rb) if ra < rb else (rb, ra), []).append((a, b) if ra < rb else (b, a))
        for (ra, rb), pairs in links.items():
            if uf.find(ra) != uf.find(rb) and _independent(pairs):
                uf.union(ra, rb)
                changed = True
    return uf


def _independent(pairs: list[tuple[int, int]]) -> bool:
    """Whether two of the links (a in one group, b in the other) share no image: one image that
    looks like another group (a near-blank picture, a symmetric one turned) is one weak link,
    however many of that group's members it resembles."""
    return any(a1 != a2 and b1 != b2 for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2))


def group_indexes(items: Items, threshold: float, keep: str = "first", k: int = NEIGHBOURS,
                  mirrors: bool = False, features: Callable[[int], Features | None] | None = None,
                  ) -> list[tuple[int, list[int], list[float]]]:
    """Groups as (representative, other members, their similarity to the representative),
    indexes into ``items``; groups ordered by their representative. ``features`` gives an
    image's ORB features for the geometric check (None: no check)."""
    n = len(items)
    parts = [exact_candidates(items), hash_candidates(items), turned_candidates(items, mirrors),
             vector_candidates(items, threshold, k, verify=features is not None)]
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    i, j = _unique_pairs(i, j, max(n, 1)) if len(i) else (i, j)
    scores, checked = _checked(items, i, j, threshold, mirrors, features)
    uf = link(n, i, j, scores, threshold)
    key = _keep_key(items, keep)
    chosen = []
    for members in uf.components():
        rep = min(members, key=key)
        chosen.append((rep, [m for m in members if m != rep]))
    reps = np.asarray([rep for rep, rest in chosen for _ in rest], np.int64)
    others = np.asarray([m for _, rest in chosen for m in rest], np.int64)
    flat = items.weigh(reps, others, mirrors)[0].tolist() if len(reps) else []
    for x, (a, b) in enumerate(zip(reps.tolist(), others.tolist(), strict=True)):
        flat[x] = checked.get((min(a, b), max(a, b)), flat[x])
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
