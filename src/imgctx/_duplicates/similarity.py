"""The combined similarity of two images, and the checks of its parameters.

The combined similarity
-----------------------
Two images are compared by three metrics: the Hamming distances ``dp`` and ``dd`` (0-64) of their
64-bit pHash and dHash, and the cosine ``cos`` of their image vectors. Each becomes a distance
measured in units of "how far a near-duplicate may go", and the units add up::

    x_hash = ((dp + dd) / 2) / HASH_SCALE          (HASH_SCALE = 8 bits)
    x_emb  = (1 - cos) / EMBEDDING_SCALE           (EMBEDDING_SCALE = 0.5)
    similarity = max(0, 1 - 0.05 * (x_hash + x_emb) ** 2)

so ``similarity`` is 1.0 for identical pixels, 0.95 (the default threshold) where the summed
distance reaches one unit, 0.98 (the default for removal) at 0.63 units, and falls towards 0 for
unrelated images. Byte-identical files (same SHA-256) score exactly 1.0. Without an image
embedder the hashes carry the verdict alone, on their own scale:
``x_hash = ((dp + dd) / 2) / HASH_ONLY_SCALE`` (17 bits), ``similarity = max(0, 1 - 0.05 *
x_hash ** 2)``. The constants were chosen on a calibration run of ``benchmarks/duplicates.py``
(see docs/duplicates.md).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from imgctx._errors import ConfigurationError
from imgctx._types import Comparison

#: The default ``threshold`` of find_duplicates, check_image and compare (the contract's example).
DEFAULT_THRESHOLD = 0.95
#: The default ``threshold`` of remove_duplicates (the contract's default): stricter, as it deletes.
REMOVE_THRESHOLD = 0.98
#: Hash distance (mean of the pHash and dHash Hamming distances) worth one unit.
HASH_SCALE = 8.0
#: Hash distance worth one unit when there are no image vectors (the hashes decide alone).
HASH_ONLY_SCALE = 17.0
#: Cosine distance (1 - cos) worth one unit.
EMBEDDING_SCALE = 0.5
#: similarity = 1 - CURVE * units**2.
CURVE = 0.05
#: Keep policies of remove_duplicates (and how a group's representative is chosen).
KEEP_POLICIES = ("first", "largest", "highest-resolution")


# -- the combined similarity -------------------------------------------------------------------


def similarity_from_units(units: np.ndarray | float) -> np.ndarray:
    """``max(0, 1 - CURVE * units**2)``, elementwise, rounded to 12 decimals (so that float32
    noise in a cosine of identical vectors cannot keep identical pixels below 1.0)."""
    u = np.asarray(units, dtype=np.float64)
    return np.round(np.clip(1.0 - CURVE * u * u, 0.0, 1.0), 12)


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


class HashedImage(Protocol):
    """What a comparison reads of an image: an ImageRecord or a probed file."""

    content_hash: str
    phash: str
    dhash: str
    path: str
    orient_hashes: str


def compare_images(a: HashedImage, b: HashedImage, va: np.ndarray | None, vb: np.ndarray | None,
                   threshold: float) -> Comparison:
    """Every metric relating two images (their hashes and image vectors, None without an image
    embedder) and the verdict at ``threshold``."""
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
