"""One look at one file, shared by ingest and duplicate detection: is it unchanged since it
was indexed (size and modification time), and, when it must be read, its decoded image with
uniform borders trimmed (what the models see) and the perceptual hashes of that picture."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from imgctx._fingerprint import orientation_hashes, trim_borders
from imgctx._images import DecodedImage, load_image, perceptual_hashes
from imgctx._settings import Settings
from imgctx._types import ImageRecord


def same_as_indexed(st: os.stat_result, record: ImageRecord) -> bool:
    """True when a file's size and modification time are those its record was made from."""
    return st.st_size == record.file_size and st.st_mtime_ns == record.mtime_ns


def unchanged_since_indexed(path: str | os.PathLike[str], record: ImageRecord | None) -> bool:
    """True when ``record`` exists and the file at ``path`` is still what it describes (False for
    a missing or unreadable file)."""
    if record is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return same_as_indexed(st, record)


@dataclass
class ProbedFile:
    """A file read and decoded for the models (borders trimmed), with its 64-bit pHash and
    dHash (hex) and its orientation hashes (see imgctx._fingerprint)."""

    image: DecodedImage
    phash: str
    dhash: str
    orient_hashes: str = ""
    #: The decoded picture before its borders were trimmed (None: nothing was trimmed).
    whole: Any = None


def probe_file(path: str | os.PathLike[str], settings: Settings, decode_side: int) -> ProbedFile:
    """Read, decode (reduced to ``decode_side``), trim the borders of and hash one file; an
    ImageError names the path for a missing, oversized or corrupt file."""
    image = load_image(path, settings.max_image_pixels, settings.max_file_bytes, decode_side)
    whole = image.image
    picture = trim_borders(whole)
    if picture is not whole:
        image = replace(image, image=picture)
    gray = picture.convert("L")  # both kinds of hash are of luminance
    phash, dhash = perceptual_hashes(gray)
    return ProbedFile(image, phash, dhash, orientation_hashes(gray), whole if picture is not whole else None)
