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


def _band_length(rows: np.ndarray) -> int:
    """How many leading rows of ``rows`` (n, m, 3) are a band of the first row's colour that
    ends in a step to the picture (0 when there is none)."""
    edge = np.median(rows[0], axis=0).astype(np.int16)
    limit = int(len(rows) * MAX_TRIM)

    def near(block: np.ndarray) -> np.ndarray:
        return (np.abs(block - edge).max(axis=2) <= BAND_TOLERANCE).mean(axis=1)

    if near(rows[:1])[0] < BAND_SHARE:
        return 0  # the common case: no band at all
    not_band = np.flatnonzero(near(rows[:limit]) < BAND_SHARE)
    if not len(not_band):
        return 0  # uniform up to the limit: a plain background, not a frame
    length = int(not_band[0])
    if length < max(1, MIN_BAND * len(rows)):
        return 0
    # A frame ends in a step: the row after it (or the next, past a row blended by resampling)
    # is mostly far from the band's colour. A background that drifts or a textured one whose
    # noise ends the band does not.
    after = near(rows[length:length + 2])
    return length if (1.0 - after.min()) >= BAND_STEP else 0


def border_box(image: Image.Image) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box inside an image's uniform borders (the whole image
    when it has none)."""
    w, h = image.size
    small = image if image.mode == "RGB" else image.convert("RGB")
    scale = min(1.0, _SAMPLE_SIDE / max(w, h))
    if scale < 1.0:
        small = small.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    a = np.asarray(small, dtype=np.int16)
    sh, sw = a.shape[:2]
    if sh < 8 or sw < 8:
        return (0, 0, w, h)
    at = a.transpose(1, 0, 2)  # a view: columns as rows
    top, bottom = _band_length(a), _band_length(a[::-1])
    left, right = _band_length(at), _band_length(at[::-1])
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


def _bits_to_int(bits: np.ndarray) -> int:
    return int.from_bytes(np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes(), "big")


def _orient_blocks(c: np.ndarray) -> np.ndarray:
    """The eight ``_orient_dct`` blocks of ``c`` at once: (8, 8, 8)."""
    return np.stack([_orient_dct(c, t) for t in range(ORIENT_COUNT)])


def _pack_rows(bits: np.ndarray) -> list[int]:
    """Each (8, 8) boolean block of ``bits`` (n, 8, 8) as a 64-bit integer, row-major."""
    packed = np.packbits(bits.reshape(len(bits), -1).astype(np.uint8), axis=1)
    return [int.from_bytes(row.tobytes(), "big") for row in packed]


def orientation_hashes(image: Image.Image) -> str:
    """The 16 hashes described in the module docstring, as 256 hex characters (of an image
    whose borders are already trimmed)."""
    from scipy.fft import dct

    gray = image.convert("L")
    p = np.asarray(gray.resize((32, 32), Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float64)
    d = np.asarray(gray.resize((9, 9), Image.Resampling.BOX), dtype=np.float64)
    block = dct(dct(p, axis=0, norm="ortho"), axis=1, norm="ortho")[:8, :8]
    lows = _orient_blocks(block)
    medians = np.median(lows.reshape(ORIENT_COUNT, -1), axis=1)
    ds = np.stack([_orient(d, t) for t in range(ORIENT_COUNT)])
    out = _pack_rows(lows > medians[:, None, None]) + _pack_rows(ds[:, :8, 1:] > ds[:, :8, :-1])
    return "".join(f"{h:016x}" for h in out)


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
