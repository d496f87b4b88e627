"""One look at one file, shared by ingest and duplicate detection: is it unchanged since it
was indexed (size and modification time), and, when it must be read, its decoded image and
perceptual hashes."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    """A file read and decoded for the models, with its 64-bit pHash and dHash (hex)."""

    image: DecodedImage
    phash: str
    dhash: str


def probe_file(path: str | os.PathLike[str], settings: Settings, decode_side: int) -> ProbedFile:
    """Read, decode (reduced to ``decode_side``) and hash one file; an ImageError names the
    path for a missing, oversized or corrupt file."""
    image = load_image(path, settings.max_image_pixels, settings.max_file_bytes, decode_side)
    phash, dhash = perceptual_hashes(image.image)
    return ProbedFile(image, phash, dhash)
