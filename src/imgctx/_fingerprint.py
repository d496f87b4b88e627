"""What duplicate detection keeps of each image beyond its upright hashes: borders trimmed, and
the perceptual hashes of the eight orientations (four rotations, each also mirrored).

Border trimming
---------------
Letterboxing, passe-partouts and screenshot padding add uniform bands that move every hash and
vector. :func:`trim_borders` strips bands from each side while at least ``BAND_SHARE`` of a
row's (column's) pixels lie within ``BAND_TOLERANCE`` of the colour of the outermost row
(column), when the band ends in a step to the picture: at least ``BAND_STEP`` of the next row's
pixels lie beyond that tolerance. A plain photo background (a sky, a wall, a gradient, a noisy
field) drifts or frays away from its edge colour instead, and is kept, so that a photo and its
framed copy are trimmed to the same picture. It never removes more than ``MAX_TRIM`` of a side
(a band reaching it is background, not a frame) and ignores bands thinner than ``MIN_BAND`` of
the side (noise at the edge). Ingest trims before hashing and embedding, so the
stored hashes and vectors describe the picture, not its frame.

Orientation hashes
------------------
``orient_hashes`` is 16 64-bit hashes in hex (256 characters): the pHash (DCT of a 32x32
grayscale, low 8x8 block against its median) of the trimmed image in the eight orientations,
then its dHash (row gradients of a 9x9 grayscale) in the same eight. Orientation ``t`` is
``rot90`` by ``t % 4`` quarter turns counter-clockwise, mirrored left-right first when ``t >= 4``.
Both hashes are of luminance, so a grayscale copy hashes like its colour original.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: A band's pixels must lie this close (max channel difference, 0-255) to the edge colour.
BAND_TOLERANCE = 24
#: Share of a row's (column's) pixels that must be near the edge colour for it to be band.
BAND_SHARE = 0.97
#: Bands thinner than this share of the side are left alone.
MIN_BAND = 0.02
#: At most this share of a side is trimmed from each end.
MAX_TRIM = 0.40
#: A band ends in a step: this share of the next row's pixels must lie beyond ``BAND_TOLERANCE``.
BAND_STEP = 0.5
#: Names of the eight orientations, in ``orient_hashes`` order.
ORIENTATIONS = ("upright", "rotated 90", "rotated 180", "rotated 270",
                "mirrored", "mirrored, rotated 90", "mirrored, rotated 180", "mirrored, rotated 270")
ORIENT_COUNT = len(ORIENTATIONS)
_SAMPLE_SIDE = 160


def _band_length(rows: np.ndarray, edge: np.ndarray) -> int:
    """How many leading rows of ``rows`` (n, m, 3) uint8 are a band of ``edge``, the first row's
    median colour, that ends in a step to the picture (0 when there is none)."""
    limit = int(len(rows) * MAX_TRIM)
    lo = np.clip(edge - BAND_TOLERANCE, 0, 255).astype(np.uint8)
    hi = np.clip(edge + BAND_TOLERANCE, 0, 255).astype(np.uint8)

    def near(block: np.ndarray) -> np.ndarray:  # share of each row within the tolerance
        inside = (block >= lo) & (block <= hi)
        return np.count_nonzero(inside[..., 0] & inside[..., 1] & inside[..., 2], axis=1) / block.shape[1]

    length = -1
    for start in range(0, limit, 16):  # most bands (and most plain edges) end in a few rows
        not_band = np.flatnonzero(near(rows[start:min(start + 16, limit)]) < BAND_SHARE)
        if len(not_band):
            length = start + int(not_band[0])
            break
    if length < 0:
        return 0  # uniform up to the limit: a plain background, not a frame
    if length < max(1, MIN_BAND * len(rows)):
        return 0
    # A frame ends in a step: the row after it (or the next, past a row blended by resampling)
    # is mostly far from the band's colour. A background that drifts or a textured one whose
    # noise ends the band does not.
    after = near(rows[length:length + 2])
    return length if (1.0 - after.min()) >= BAND_STEP else 0


def _edges(lines: np.ndarray, tolerance: int = BAND_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """For edge lines ``lines`` (k, n, 3) uint8: each line's median colour (per channel, truncated
    to an integer) and the share of its pixels within ``tolerance`` of it in every channel."""
    n = lines.shape[1]
    s = np.sort(lines, axis=1).astype(np.int16)
    edge = (s[:, (n - 1) // 2] + s[:, n // 2]) // 2  # np.median's value, truncated
    share = (np.abs(lines.astype(np.int16) - edge[:, None, :]).max(axis=2) <= tolerance).mean(axis=1)
    return edge, share


def _may_have_band(image: Image.Image, sw: int, sh: int) -> bool:
    """False when no side of ``image`` resized to (sw, sh) can start a band, decided on its four
    edge lines alone: each is resized by itself (``box``), about a fifth of the work of the whole
    sample. Resizing a line by itself rounds in another order, so its pixels may differ from the
    whole sample's by 1; that moves a line's median by at most 1 too, so a pixel within
    ``BAND_TOLERANCE`` of the median in the sample is within ``BAND_TOLERANCE + 2`` here, and
    testing with 3 more never rules out a side that the sample would test further."""
    w, h = image.size
    bilinear = Image.Resampling.BILINEAR
    rows = np.stack([np.asarray(image.resize((sw, 1), bilinear, box=b))[0]
                     for b in ((0, 0, w, h / sh), (0, h - h / sh, w, h))])
    cols = np.stack([np.asarray(image.resize((1, sh), bilinear, box=b))[:, 0]
                     for b in ((0, 0, w / sw, h), (w - w / sw, 0, w, h))])
    loose = BAND_TOLERANCE + 3
    return bool((_edges(rows, loose)[1] >= BAND_SHARE).any() or (_edges(cols, loose)[1] >= BAND_SHARE).any())


def border_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box inside an image's uniform borders (the whole image
    when it has none)."""
    w, h = image.size
    small = image if image.mode == "RGB" else image.convert("RGB")
    scale = min(1.0, _SAMPLE_SIDE / max(w, h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if min(size) >= 8 and not _may_have_band(small, *size):
            return (0, 0, w, h)  # the common case: no side starts with a near-uniform line
        small = small.resize(size, Image.Resampling.BILINEAR)
    a = np.asarray(small)
    sh, sw = a.shape[:2]
    if sh < 8 or sw < 8:
        return (0, 0, w, h)
    at = a.transpose(1, 0, 2)  # a view: columns as rows
    sides = (a, a[::-1], at, at[::-1])  # top, bottom, left, right: each side's rows inward
    row_edge, row_share = _edges(np.stack((a[0], a[-1])))
    col_edge, col_share = _edges(np.stack((a[:, 0], a[:, -1])))
    edges, shares = (*row_edge, *col_edge), (*row_share, *col_share)
    # Only a side whose outermost line is near-uniform can have a band: usually none.
    top, bottom, left, right = (_band_length(rows, edge) if share >= BAND_SHARE else 0
                                for rows, edge, share in zip(sides, edges, shares))
    if not (top or bottom or left or right):
        return (0, 0, w, h)
    box = (left / sw * w, top / sh * h, (sw - right) / sw * w, (sh - bottom) / sh * h)
    return (int(np.floor(box[0])), int(np.floor(box[1])), int(np.ceil(box[2])), int(np.ceil(box[3])))


def trim_borders(image: Image.Image) -> Image.Image:
    """The image without its uniform borders (the same object when it has none)."""
    box = border_box(image)
    if box == (0, 0, *image.size):
        return image
    return image.crop(box)


def _orient(a: np.ndarray, t: int) -> np.ndarray:
    return np.rot90(a[:, ::-1] if t >= 4 else a, t % 4)


_SIGN = (-1.0) ** np.arange(8)


def _orient_dct(c: np.ndarray, t: int) -> np.ndarray:
    """The DCT-II block of ``_orient(image, t)`` from the image's block ``c``: a flip of an axis
    negates that axis's odd coefficients, a transposition transposes them."""
    if t >= 4:
        c = c * _SIGN[None, :]
    for _ in range(t % 4):  # rot90(m) == flipud(m.T)
        c = c.T * _SIGN[:, None]
    return c


def _orientation_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every orientation as one gather, so the 16 hashes take a few array calls: the flat
    indexes and signs of ``_orient_dct(block, t)`` in an 8x8 block (8, 64), and the flat indexes
    of the right and left pixel of each dHash gradient of ``_orient(d, t)`` in a 9x9 grey (8, 64)."""
    ids = np.arange(1, 65, dtype=np.float64).reshape(8, 8)
    signed = np.stack([_orient_dct(ids, t).reshape(-1) for t in range(ORIENT_COUNT)])
    grid = np.arange(81).reshape(9, 9)
    turned = np.stack([_orient(grid, t) for t in range(ORIENT_COUNT)])
    return ((np.abs(signed) - 1).astype(np.intp), np.sign(signed),
            turned[:, :8, 1:].reshape(ORIENT_COUNT, -1), turned[:, :8, :-1].reshape(ORIENT_COUNT, -1))


_DCT_INDEX, _DCT_SIGN, _GRADIENT_RIGHT, _GRADIENT_LEFT = _orientation_tables()


def orientation_hashes(image: Image.Image) -> str:
    """The 16 hashes described in the module docstring, as 256 hex characters (of an image
    whose borders are already trimmed; a grey ``L`` image is used as it is)."""
    from scipy.fftpack import dct  # the same pocketfft transform as scipy.fft's, less dispatch

    gray = image if image.mode == "L" else image.convert("L")
    p = np.asarray(gray.resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float64)
    d = np.asarray(gray.resize((9, 9), Image.Resampling.BOX), dtype=np.float64).reshape(-1)
    block = dct(dct(p, axis=0, norm="ortho"), axis=1, norm="ortho")[:8, :8].reshape(-1)
    lows = block[_DCT_INDEX] * _DCT_SIGN  # (8, 64): the block of each orientation, row-major
    middle = np.partition(lows, (31, 32), axis=1)[:, 31:33]  # what np.median does, in one call
    bits = np.concatenate((lows > middle.mean(axis=1)[:, None], d[_GRADIENT_RIGHT] > d[_GRADIENT_LEFT]))
    return np.packbits(bits, axis=1).tobytes().hex()  # each row big-endian: 16 hex digits a hash


def parse_orient_hashes(values: list[str]) -> np.ndarray:
    """(n, 16) uint64 from ``orient_hashes`` strings; a row of zeros for an empty or malformed
    one (a record indexed before these hashes existed), flagged by :func:`has_orient_hashes`."""
    out = np.zeros((len(values), 2 * ORIENT_COUNT), np.uint64)
    for k, v in enumerate(values):
        if v and len(v) == 32 * ORIENT_COUNT:
            try:
                out[k] = [int(v[i:i + 16], 16) for i in range(0, len(v), 16)]
            except ValueError:
                continue
    return out


def has_orient_hashes(table: np.ndarray) -> np.ndarray:
    return table.any(axis=1)
