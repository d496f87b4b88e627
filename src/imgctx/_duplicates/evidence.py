"""Why two images count as duplicates: each kind of evidence, and the one rule that weighs them
(used alike by ``compare`` and by grouping).

1. **Identical bytes** (same SHA-256): similarity 1.0.
2. **Upright match**: the combined similarity of the upright hashes and the image vectors
   (:mod:`.similarity`): two signals that must agree.
3. **Turned match**: the pHash and dHash of one image turned by 90, 180 or 270 degrees (and
   mirrored, when ``mirrors`` is on) against the other's upright ones, both hashes together:
   ``1 - 0.05 * (((dp + dd) / 2) / TURNED_HASH_SCALE) ** 2``, at most 0.99 (a turned copy is
   the same picture, not the same pixels), counted only within ``VERIFY_BITS`` (beyond, the
   turned hashes say nothing).
4. **Geometric match** (:mod:`.geometry`): a similarity transform that puts (most of) one
   picture inside the other, with enough keypoints agreeing.

The rule: the similarity is the best of 1-3. A pair below the threshold that is still plausible
(image-vector cosine at least ``VERIFY_COS``, or hashes within ``VERIFY_BITS`` in some
orientation) gets the geometric check, and its similarity becomes the geometric one when that is
higher. A pair at or above the threshold but below ``CERTAIN`` gets the check too, and when the
check finds a confident partial overlap (another view of the same scene: enough keypoints agree
but less than ``MIN_CONTAINED`` of the smaller picture lies in the other), the similarity drops
to ``1 - 0.05 * ((1 - contained) / OVERLAP_SCALE) ** 2``: a veto.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from imgctx._duplicates.geometry import (
    GEOMETRIC_CAP,
    MIN_CONTAINED,
    OVERLAP_SCALE,
    Features,
    GeometricMatch,
    match,
)
from imgctx._duplicates.similarity import HashedImage, compare_images, popcount, similarity_from_units
from imgctx._fingerprint import ORIENT_COUNT, ORIENTATIONS, parse_orient_hashes
from imgctx._types import Comparison

#: Mean of the turned pHash and dHash distances worth one unit (stricter than upright hashes,
#: since no image vector backs a turned match).
TURNED_HASH_SCALE = 4.0
#: Pairs below the threshold get the geometric check from this image-vector cosine up ...
VERIFY_COS = 0.50
#: ... or when their hashes (mean of pHash and dHash distances, in some orientation) are this close.
VERIFY_BITS = 16
#: At most this many pairs per image get the geometric check to rescue them (the most similar).
VERIFY_PER_IMAGE = 12
#: ... and at most this many more, the pairs left unchecked taken by their combined similarity.
VERIFY_EXTRA = 4
#: Pairs at or above this similarity need no geometric check.
CERTAIN = 0.985

NO_MATCH, EXACT, UPRIGHT, TURNED, GEOMETRIC, PARTIAL = range(6)
_REASONS = {
    NO_MATCH: "no match", EXACT: "identical bytes", UPRIGHT: "hashes and image vectors agree",
    TURNED: "hashes agree when the image is {orientation}", GEOMETRIC: "geometric match: {detail}",
    PARTIAL: "partial overlap (another view of the scene): {detail}",
}


_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)  # turning back: a quarter turn undoes three, a mirroring itself


def turned_orientations(mirrors: bool) -> range:
    """Orientation indexes (see imgctx._fingerprint) other than upright that may match."""
    return range(1, ORIENT_COUNT if mirrors else 4)


def turned_scores(oa: np.ndarray, ob: np.ndarray, mirrors: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows of orientation hashes (k, 16) of a and b: the best turned similarity, its
    orientation index, and the mean (pHash, dHash) distance in bits there; zeros (and 64 bits)
    where either row is empty (no orientation hashes), a zero similarity beyond VERIFY_BITS."""
    k = len(oa)
    best_t = np.zeros(k, np.int64)
    best_bits = np.full(k, 64.0)
    for t in turned_orientations(mirrors):  # a turned against b upright, and b turned back against a
        for x, y, named in ((oa, ob, t), (ob, oa, _INVERSE[t])):
            bits = (popcount(x[:, t] ^ y[:, 0]) + popcount(x[:, ORIENT_COUNT + t] ^ y[:, ORIENT_COUNT])) / 2.0
            better = bits < best_bits
            best_bits = np.where(better, bits, best_bits)
            best_t = np.where(better, named, best_t)
    usable = oa.any(axis=1) & ob.any(axis=1)
    turned = np.minimum(GEOMETRIC_CAP, similarity_from_units(best_bits / TURNED_HASH_SCALE))
    best = np.where(usable & (best_bits <= VERIFY_BITS), turned, 0.0)
    return best, np.where(usable, best_t, 0), np.where(usable, best_bits, 64.0)


def needs_check(base: np.ndarray, cos: np.ndarray | None, bits: np.ndarray, threshold: float,
                exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(to rescue, to confirm): pairs below the threshold yet plausible, and pairs above it
    but not certain."""
    plausible = bits <= VERIFY_BITS
    if cos is not None:
        plausible |= cos >= VERIFY_COS
    rescue = (base < threshold) & plausible & ~exact
    confirm = (base >= threshold) & (base < CERTAIN) & ~exact
    return rescue, confirm


def apply_check(base: float, reason: int, geo: GeometricMatch) -> tuple[float, int]:
    """The similarity and reason after the geometric check (see the module docstring)."""
    if geo.is_match and geo.similarity > base:
        return geo.similarity, GEOMETRIC
    if geo.is_confident and geo.contained < MIN_CONTAINED:
        partial = float(similarity_from_units((1.0 - geo.contained) / OVERLAP_SCALE))
        if partial < base:
            return partial, PARTIAL
    return base, reason


@dataclass(frozen=True)
class Verdict:
    """The outcome for one pair: similarity, reason code, and the turned orientation (index)."""

    similarity: float
    reason: int
    orientation: int = 0
    geometric: GeometricMatch | None = None

    def describe(self) -> str:
        detail = ""
        if self.geometric is not None:
            g = self.geometric
            detail = (f"{g.inliers} keypoints agree, {g.contained:.0%} of the smaller picture inside "
                      f"the other, covering {g.overlap:.0%} of it, turned {g.rotation:.0f} degrees")
            if g.is_pixel_aligned and not (g.is_confident or g.is_aligned):
                detail = (f"too few keypoints; one picture found inside the other by its pixels, covering "
                          f"{g.overlap:.0%} of it, their detail agreeing in {g.cells} of 9 cells")
            elif g.agreement:
                detail += f", the aligned pictures' detail agrees {g.agreement:.2f} beyond those keypoints"
        return _REASONS[self.reason].format(orientation=ORIENTATIONS[self.orientation], detail=detail)


class Pictures(Protocol):
    """Where the geometric check gets a picture's features (None: it cannot)."""

    def __call__(self, path: str) -> Features | None: ...


def judge(a: HashedImage, b: HashedImage, va: np.ndarray | None, vb: np.ndarray | None,
          threshold: float, mirrors: bool = False, pictures: Pictures | None = None) -> Comparison:
    """Every metric relating two images and the verdict at ``threshold`` by the rule above;
    ``a`` and ``b`` carry ``path`` and ``orient_hashes`` besides their hashes."""
    up = compare_images(a, b, va, vb, threshold)
    oa, ob = parse_orient_hashes([a.orient_hashes, b.orient_hashes])
    turn, turn_t, turn_bits = turned_scores(oa[None], ob[None], mirrors)
    base, reason, orientation = up.similarity, (EXACT if up.exact else UPRIGHT), 0
    if turn[0] > base:
        base, reason, orientation = float(turn[0]), TURNED, int(turn_t[0])
    if base <= 0:
        reason = NO_MATCH
    bits = min((up.phash_distance + up.dhash_distance) / 2.0, float(turn_bits[0]))
    cos = None if up.embedding_cosine is None else np.array([up.embedding_cosine])
    rescue, confirm = needs_check(np.array([base]), cos, np.array([bits]), threshold, np.array([up.exact]))
    geo = None
    if pictures is not None and (rescue[0] or confirm[0]):
        fa, fb = pictures(a.path), pictures(b.path)
        if fa is not None and fb is not None:
            geo = match(fa, fb)
            base, reason = apply_check(base, reason, geo)
    verdict = Verdict(base, reason, orientation, geo)
    usable = oa.any() and ob.any()
    return replace(
        up, similarity=base, is_duplicate=base >= threshold, reason=verdict.describe(),
        orientation=ORIENTATIONS[orientation] if reason == TURNED else "upright",
        turned_hash_distance=float(turn_bits[0]) if usable else None,
        geometric_inliers=None if geo is None else geo.inliers,
        geometric_contained=None if geo is None else round(geo.contained, 4),
        geometric_overlap=None if geo is None else round(geo.overlap, 4),
    )
