"""The geometric check: is one picture (most of) the other, under a rotation, a scale and a
shift? Crop-robust evidence that also tells a crop from another view of the same scene.

ORB keypoints (OpenCV) of both pictures, borders trimmed and scaled to ``MATCH_SIDE`` on the long
side, are matched (Hamming distance, Lowe's ratio test 0.8) and a similarity transform (rotation,
uniform scale, shift) is fitted with RANSAC. The fitted transform maps one picture's frame into
the other's, which gives two shares of the overlap:

- ``contained``: the share of the smaller picture that lies inside the other (1.0 for a crop, a
  thumbnail, a rotated or recompressed copy; about 0.2 for the left and right parts of a wide
  photo that overlap by a fifth);
- ``overlap``: the share of the larger picture that the smaller one covers (0.64 for a crop to
  80% of each side).

A match needs ``MIN_INLIERS`` keypoints that agree with the transform, spread over at least
``MIN_SPREAD`` of the shared region (their convex hull's share of it: a logo or watermark that
two different photos share covers a small part), a scale within ``MAX_SCALE`` either way, and
``contained`` of at least ``MIN_CONTAINED``; its similarity is ``1 - 0.05 * ((1 - overlap) / OVERLAP_SCALE) ** 2``
(at most ``GEOMETRIC_CAP``), so it reaches the default threshold 0.95 when the smaller picture
covers half of the larger one.

A small, hard-compressed copy has few keypoints, and a picture's keypoints crowd on its one
textured spot, so fewer or less spread keypoints still make a match when the pictures agree once
aligned: with at least ``MIN_ALIGNED`` keypoints agreeing, the transform lays one picture's detail
(its ``TEXTURE_SIDE`` version, band-passed so that slow changes of light do not count) on the
other's, and the correlation outside the agreeing keypoints' hull (``agreement``) must reach
``MIN_AGREEMENT``. A watermark shared by two different photos agrees only on itself: beyond its
hull the photos barely correlate (at most 0.25 on the dev set, 0.53 for two tiles of one flower
photo held out, against a median of 0.9 for copies).
Some pictures have no keypoints to speak of (a colour wheel, a nearly blank corner of a retina
scan), and a tiny copy's keypoints may pile onto one spot and fit a degenerate transform. When the
keypoints neither match nor can be trusted (not confident, not aligned), one picture is searched
for inside the other by its pixels (``pixel_match``): the grey pictures at ``PIXEL_SIDE``, one
scaled to cover from about half (``PIXEL_MIN_OVERLAP``) to all of the other and slid over it
(normalised cross-correlation, coarse then fine), and where it fits best their band-passed detail
is compared in a 3 x 3 grid: at least ``PIXEL_CELLS`` of the nine cells must each correlate by
``PIXEL_AGREEMENT``. A cell without detail counts against the match, so blank areas, a rim that two
different pictures share, or a watermark across the middle row are no evidence (two different
corners of the round retina scan, one turned onto the other, agree in at most five cells on the dev
set; copies in eight or nine). A watermark that spans two rows, shared by two different smooth
pictures, can make seven cells agree; their grey levels, where one fits best in the other, must
then correlate by ``PIXEL_FIT`` too (the light of two different pictures does not agree). Only upright pictures are searched (turned copies have their hashes).
OpenCV is optional (``pip install "imgctx[duplicates]"``); without it no pair is checked.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from imgctx._duplicates.similarity import similarity_from_units
from imgctx._fingerprint import trim_borders
from imgctx._images import load_image

#: Pictures are matched with this long side (scaled up or down).
MATCH_SIDE = 512
#: Keypoints fitted per picture.
FEATURES = 1000
#: Matches that must agree with the fitted transform.
MIN_INLIERS = 20
#: Share of the smaller picture that must lie inside the larger one.
MIN_CONTAINED = 0.85
#: Share of the shared region that the agreeing keypoints must span (their convex hull).
MIN_SPREAD = 0.2
#: With fewer or less spread keypoints, a match still counts when at least this many agree and
#: the pictures, aligned by the transform, agree in their fine detail (see ``agreement``) ...
MIN_ALIGNED = 6
#: ... by at least this correlation, measured outside the agreeing keypoints' hull.
MIN_AGREEMENT = 0.6
#: Side (long) of the band-passed picture the agreement is measured on.
TEXTURE_SIDE = 128
#: A confident match whose keypoints span less than this share of the shared region is checked
#: beyond them too ...
CHECK_SPREAD = 0.35
#: ... and refused when the pictures' detail there correlates less than this (the bar of the
#: aligned-detail check): a large watermark or logo shared by two different photos of one scene
#: carries hundreds of keypoints along its band (spread 0.2-0.23), while the photos around it
#: agree less (0.14-0.55 for four watermarked quarters of scikit-image's clock_motion).
REFUTE_AGREEMENT = MIN_AGREEMENT
#: Without a keypoint transform to trust (too few keypoints, as in a smooth or nearly blank picture
#: or a tiny copy of one), one picture is searched for in the other directly: scaled so that it
#: covers ``PIXEL_MIN_OVERLAP`` to all of the other (in steps of ``PIXEL_STEP`` of the side) and
#: slid over it, both at ``PIXEL_SIDE`` (long side) ...
PIXEL_SIDE = 96
PIXEL_MIN_OVERLAP = 0.49
PIXEL_STEP = 0.015
#: ... and, where it fits best, the band-passed detail is compared in a 3 x 3 grid of cells: at
#: least ``PIXEL_CELLS`` cells must each correlate by ``PIXEL_AGREEMENT`` (a cell without detail
#: in either picture counts as disagreeing, so a shared overlay or a shared blank area is no
#: evidence).
PIXEL_CELLS = 7
PIXEL_AGREEMENT = 0.6
#: Where it fits best, the grey levels themselves must correlate by at least this much (not only
#: the detail: a large watermark shared by two different smooth pictures agrees in detail, not in
#: light) ...
PIXEL_FIT = 0.55
_CELL_DETAIL = 1.0  # standard deviation (grey levels) of the band-passed cell below which it has no detail
#: Largest scale change (either way) between the two pictures, each at MATCH_SIDE.
MAX_SCALE = 4.0
#: Uncovered share of the larger picture worth one unit of distance.
OVERLAP_SCALE = 0.5
#: A geometric match says "the same picture", never "the same pixels": its similarity stays below 1.
GEOMETRIC_CAP = 0.99
_RATIO = 0.8
_REPROJECTION = 0.012  # RANSAC reprojection threshold, as a share of MATCH_SIDE


def opencv() -> Any | None:
    """The cv2 module, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


@dataclass(frozen=True)
class Features:
    """ORB keypoints (n, 2) and descriptors (n, 32) of a picture of ``size`` (w, h) pixels, and
    its fine detail (``texture``: the picture at ``TEXTURE_SIDE``, band-passed; None: unknown)."""

    points: np.ndarray
    descriptors: np.ndarray | None
    size: tuple[int, int]
    texture: np.ndarray | None = None
    pixels: np.ndarray | None = None  # the picture's grey levels at PIXEL_SIDE (float32); None: unknown


@dataclass(frozen=True)
class GeometricMatch:
    """What the check found: matches agreeing with the transform (``inliers``) out of those
    passing the ratio test, the two overlap shares, the transform's rotation and scale, and the
    share of the shared region the agreeing keypoints span, and how well the aligned pictures'
    detail agrees away from those keypoints (``agreement``, a correlation; 0.0 when not measured)."""

    inliers: int
    matches: int
    contained: float
    overlap: float
    rotation: float
    scale: float
    spread: float = 0.0
    agreement: float = 0.0
    cells: int = 0  # cells whose detail agrees when the pictures were aligned by their pixels (0: not tried)
    fit: float = 0.0  # where they were so aligned, the correlation of their grey levels (0.0: not tried)
    refuted: bool = False  # enough keypoints, but on a band that two different pictures share

    @property
    def is_confident(self) -> bool:
        """Enough keypoints, spread out, under a sane transform: the overlap shares can be trusted."""
        return (self.inliers >= MIN_INLIERS and self.spread >= MIN_SPREAD and not self.refuted
                and 1.0 / MAX_SCALE <= self.scale <= MAX_SCALE)

    @property
    def is_aligned(self) -> bool:
        """Fewer or clustered keypoints, but the pictures, laid on each other by the transform,
        agree in their detail beyond those keypoints (a shared watermark agrees only on itself)."""
        return (self.inliers >= MIN_ALIGNED and self.agreement >= MIN_AGREEMENT
                and 1.0 / MAX_SCALE <= self.scale <= MAX_SCALE)

    @property
    def is_pixel_aligned(self) -> bool:
        """No keypoint transform to trust, but one picture found inside the other by its pixels,
        their detail agreeing cell by cell (see ``pixel_match``)."""
        return self.cells >= PIXEL_CELLS and self.fit >= PIXEL_FIT

    @property
    def is_match(self) -> bool:
        return (self.is_confident or self.is_aligned or self.is_pixel_aligned) and self.contained >= MIN_CONTAINED

    @property
    def similarity(self) -> float:
        if not self.is_match:
            return 0.0
        return min(GEOMETRIC_CAP, float(similarity_from_units((1.0 - self.overlap) / OVERLAP_SCALE)))


NO_MATCH = GeometricMatch(0, 0, 0.0, 0.0, 0.0, 1.0)


def features_of(image: Image.Image) -> Features:
    """ORB features of a picture whose borders are already trimmed."""
    cv2 = opencv()
    assert cv2 is not None, "features_of needs OpenCV"
    gray = np.asarray(image.convert("L"))
    h, w = gray.shape
    f = MATCH_SIDE / max(w, h)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=10, edgeThreshold=15, patchSize=31)
    keypoints, descriptors = orb.detectAndCompute(gray, None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    f = PIXEL_SIDE / max(w, h)
    pixels = cv2.resize(np.asarray(image.convert("L")), (max(1, round(w * f)), max(1, round(h * f))),
                        interpolation=cv2.INTER_AREA).astype(np.float32)
    return Features(points, descriptors, size, _texture(cv2, gray), pixels)


def _band_pass(cv2: Any, x: np.ndarray, fine: float = 0.8, coarse: float = 4.0) -> np.ndarray:
    """Detail between two scales (Gaussian sigmas, pixels): the slow changes of light taken out."""
    return cv2.GaussianBlur(x, (0, 0), fine) - cv2.GaussianBlur(x, (0, 0), coarse)


def _agreeing_cells(cv2: Any, x: np.ndarray, y: np.ndarray) -> int:
    """Cells of a 3 x 3 grid where the band-passed x and y (same shape) both have detail and
    correlate by at least PIXEL_AGREEMENT."""
    x, y = _band_pass(cv2, x), _band_pass(cv2, y)
    h, w = x.shape
    count = 0
    for r in range(3):
        for c in range(3):
            cell = (slice(r * h // 3, (r + 1) * h // 3), slice(c * w // 3, (c + 1) * w // 3))
            a, b = x[cell].ravel(), y[cell].ravel()
            a, b = a - a.mean(), b - b.mean()
            if a.std() < _CELL_DETAIL or b.std() < _CELL_DETAIL:
                continue
            count += float((a * b).sum() / math.sqrt(float((a * a).sum() * (b * b).sum()))) >= PIXEL_AGREEMENT
    return count


def _best_fit(cv2: Any, outer: np.ndarray, inner: np.ndarray,
              sides: np.ndarray) -> tuple[float, float, int, int, np.ndarray | None]:
    """(correlation, side, x, y, template): where ``inner``, scaled (``template``) to cover
    ``side`` ** 2 of ``outer`` (for each side that fits), correlates best with ``outer``;
    correlation -2.0 when none fits."""
    ho, wo = outer.shape
    hi, wi = inner.shape
    fit = math.sqrt(wo * ho / (wi * hi))
    best: tuple[float, float, int, int, np.ndarray | None] = (-2.0, 0.0, 0, 0, None)
    for side in sides:
        tw, th = round(wi * fit * side), round(hi * fit * side)
        if tw > wo or th > ho or tw < 8 or th < 8:
            continue
        template = cv2.resize(inner, (tw, th), interpolation=cv2.INTER_AREA)
        if template.std() < 1e-3:
            continue
        _, score, _, (x, y) = cv2.minMaxLoc(cv2.matchTemplate(outer, template, cv2.TM_CCOEFF_NORMED))
        if score > best[0]:
            best = (float(score), float(side), x, y, template)
    return best


def _half(cv2: Any, x: np.ndarray) -> np.ndarray:
    return cv2.resize(x, (max(1, x.shape[1] // 2), max(1, x.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def pixel_match(a: Features, b: Features) -> GeometricMatch:
    """One picture searched for inside the other by its pixels (upright, scaled to cover from
    PIXEL_MIN_OVERLAP to all of it, slid over it: coarsely at half of PIXEL_SIDE, then finely
    around the best fit), and the detail compared cell by cell where it fits best: a match
    (contained 1.0) when PIXEL_CELLS cells agree."""
    cv2 = opencv()
    assert cv2 is not None, "pixel_match needs OpenCV"
    if a.pixels is None or b.pixels is None:
        return NO_MATCH
    coarse = np.arange(1.0, math.sqrt(PIXEL_MIN_OVERLAP) - 1e-9, -2 * PIXEL_STEP)
    fits = [(_best_fit(cv2, _half(cv2, o), _half(cv2, i), coarse), o, i)
            for o, i in ((a.pixels, b.pixels), (b.pixels, a.pixels))]
    (score, side, *_), outer, inner = max(fits, key=lambda f: f[0][0])
    if score <= -2.0:
        return NO_MATCH
    fine = np.clip(side + PIXEL_STEP * np.array([-1.0, 0.0, 1.0]), math.sqrt(PIXEL_MIN_OVERLAP), 1.0)
    score, side, x, y, template = _best_fit(cv2, outer, inner, np.unique(fine))
    if template is None:
        return NO_MATCH
    th, tw = template.shape
    cells = _agreeing_cells(cv2, outer[y:y + th, x:x + tw], template)
    found = GeometricMatch(0, 0, 0.0, min(1.0, tw * th / outer.size), 0.0, 1.0, cells=cells, fit=score)
    return replace(found, contained=1.0) if found.is_pixel_aligned else found


def _texture(cv2: Any, gray: np.ndarray) -> np.ndarray:
    """The picture (at MATCH_SIDE) scaled to TEXTURE_SIDE and band-passed: its detail, without
    the slow changes of light that make any two smooth pictures correlate."""
    h, w = gray.shape
    f = TEXTURE_SIDE / MATCH_SIDE
    small = cv2.resize(gray, (max(1, round(w * f)), max(1, round(h * f))),
                       interpolation=cv2.INTER_AREA).astype(np.float32)
    return _band_pass(cv2, small, 1.0, 6.0)


def _agreement(cv2: Any, a: Features, b: Features, transform: np.ndarray, points_b: np.ndarray) -> float:
    """Correlation of a's and b's detail where the transform lays a on b, leaving out the
    agreeing keypoints' hull (b's ``points_b``, grown by a few pixels): what else agrees."""
    if a.texture is None or b.texture is None:
        return 0.0
    f = TEXTURE_SIDE / MATCH_SIDE
    t = transform.astype(np.float32).copy()
    t[:, 2] *= f
    hb, wb = b.texture.shape
    warped = cv2.warpAffine(a.texture, t, (wb, hb), flags=cv2.INTER_LINEAR, borderValue=0)
    inside = cv2.warpAffine(np.ones_like(a.texture), t, (wb, hb), flags=cv2.INTER_NEAREST, borderValue=0)
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0.5
    if len(points_b) >= 3:
        hull = np.zeros((hb, wb), np.uint8)
        cv2.fillConvexPoly(hull, np.round(cv2.convexHull(points_b * f)).astype(np.int32), 1)
        inside &= cv2.dilate(hull, np.ones((9, 9), np.uint8)) == 0
    if inside.sum() < 200:
        return 0.0
    x, y = warped[inside], b.texture[inside]
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / math.sqrt(float((x * x).sum() * (y * y).sum()) + 1e-9))


def file_features(path: str | os.PathLike[str], max_pixels: int, max_bytes: int) -> Features:
    """ORB features of an image file (decoded upright, borders trimmed); an ImageError when the
    file cannot be read."""
    decoded = load_image(path, max_pixels, max_bytes, MATCH_SIDE)
    return features_of(trim_borders(decoded.image))


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def match(a: Features, b: Features) -> GeometricMatch:
    """The geometric check of two pictures' features (see the module docstring): the keypoints,
    and where they make no match and cannot be trusted to tell a partial overlap, the pixels."""
    found = keypoint_match(a, b)
    if found.is_match or found.is_confident or found.is_aligned:
        return found  # a match, or keypoints that can tell a partial overlap
    pixels = pixel_match(a, b)
    return pixels if pixels.is_match else replace(found, cells=pixels.cells, fit=pixels.fit)


def keypoint_match(a: Features, b: Features) -> GeometricMatch:
    """The keypoints' check of two pictures' features (see the module docstring)."""
    cv2 = opencv()
    assert cv2 is not None, "match needs OpenCV"
    if a.descriptors is None or b.descriptors is None or len(a.points) < 2 or len(b.points) < 2:
        return NO_MATCH
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO * p[1].distance]
    if len(good) < MIN_ALIGNED:
        return GeometricMatch(0, len(good), 0.0, 0.0, 0.0, 1.0)
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=_REPROJECTION * MATCH_SIDE,
        maxIters=2000, confidence=0.995)
    if transform is None or mask is None:
        return GeometricMatch(0, len(good), 0.0, 0.0, 0.0, 1.0)
    inliers = int(mask.sum())
    scale = math.hypot(transform[0, 0], transform[1, 0])
    rotation = math.degrees(math.atan2(transform[1, 0], transform[0, 0]))
    wa, ha = a.size
    wb, hb = b.size
    corners = np.array([[0, 0], [wa, 0], [wa, ha], [0, ha]], np.float32)
    quad = (corners @ transform[:, :2].T + transform[:, 2]).astype(np.float32)
    rect = np.array([[0, 0], [wb, 0], [wb, hb], [0, hb]], np.float32)
    common, _ = cv2.intersectConvexConvex(quad, rect)
    area_a, area_b = _area(quad), float(wb * hb)
    if area_a <= 0 or common <= 0:
        return GeometricMatch(inliers, len(good), 0.0, 0.0, rotation, scale)
    a_in_b, b_in_a = min(1.0, common / area_a), min(1.0, common / area_b)
    keep = mask.reshape(-1).astype(bool)
    hull_b = float(cv2.contourArea(cv2.convexHull(dst[keep]))) if inliers >= 3 else 0.0
    spread = min(1.0, hull_b / common)
    small_in_large = a_in_b if area_a <= area_b else b_in_a
    large_covered = b_in_a if area_a <= area_b else a_in_b
    found = GeometricMatch(inliers, len(good), small_in_large, large_covered, rotation, scale, spread)
    if found.is_confident and spread < CHECK_SPREAD:  # many keypoints, but on a band: a shared overlay?
        agreement = _agreement(cv2, a, b, transform, dst[keep])
        return replace(found, agreement=agreement, refuted=agreement < REFUTE_AGREEMENT)
    if found.is_confident or small_in_large < MIN_CONTAINED or inliers < MIN_ALIGNED:
        return found  # the keypoints decide alone
    return replace(found, agreement=_agreement(cv2, a, b, transform, dst[keep]))
