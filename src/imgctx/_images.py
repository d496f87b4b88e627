"""Safe reading and decoding of image files.

Files are read once into memory; the format is sniffed from the bytes (never the extension);
the pixel count is checked from the header before any pixel is decoded; EXIF orientation is
applied; the result is an RGB image plus the file facts the record needs.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgctx._errors import (
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageError,
    MissingDependencyError,
)
from imgctx._paths import expand

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff",
     ".heic", ".heif"}
)
#: Images are reduced so their short side is this many pixels (or the largest input size of the
#: configured models, when they declare one): models never need more, and a JPEG is decoded at a
#: reduced scale straight from its DCT coefficients (Image.draft), which is several times faster.
DEFAULT_DECODE_SIDE = 256

_heif_registered: bool | None = None


def _register_heif() -> bool:
    global _heif_registered
    if _heif_registered is None:
        try:
            from pillow_heif import register_heif_opener
        except ImportError:
            _heif_registered = False
        else:
            register_heif_opener()
            _heif_registered = True
    return _heif_registered


def sniff_format(head: bytes) -> str | None:
    """The image format from the first bytes of a file, or None if it is not one we read."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[4:8] == b"ftyp" and head[8:12] in (
        b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"heim", b"heis"
    ):
        return "HEIF"
    return None


@dataclass(frozen=True)
class DecodedImage:
    """A decoded RGB image (reduced to the models' input size) and its file facts."""

    path: str
    image: Image.Image
    format: str
    size: tuple[int, int]
    file_size: int
    mtime_ns: int
    content_hash: str


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_file(path: str | os.PathLike[str], max_bytes: int) -> tuple[bytes, os.stat_result]:
    """Read a regular file whole, refusing missing paths, directories and oversized files."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageNotFoundError(p, "file not found") from None
    except OSError as exc:
        raise ImageNotFoundError(p, f"cannot access file: {exc.strerror or exc}") from None
    if not p.is_file():
        raise ImageNotFoundError(p, "not a regular file")
    if st.st_size == 0:
        raise InvalidImageError(p, "empty file")
    if st.st_size > max_bytes:
        raise ImageTooLargeError(p, f"file is {st.st_size} bytes, over the {max_bytes}-byte limit")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(p, f"cannot read file: {exc.strerror or exc}") from None
    return data, st


def decode(
    data: bytes, path: str | os.PathLike[str] | None, max_pixels: int,
    short_side: int | None = DEFAULT_DECODE_SIDE,
) -> tuple[Image.Image, str, tuple[int, int]]:
    """Decode bytes to an upright RGB image reduced to ``short_side`` (None: full size);
    returns (image, format, original upright size)."""
    fmt = sniff_format(data[:32])
    if fmt is None:
        raise InvalidImageError(path, "not a supported image format (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC)")
    if fmt == "HEIF" and not _register_heif():
        raise MissingDependencyError("reading HEIC/HEIF images", "heif")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise ImageTooLargeError(path, f"{w}x{h} pixels is over the {max_pixels}-pixel limit")
            img_format = img.format or fmt
            orientation = img.getexif().get(0x0112, 1)
            upright = (h, w) if orientation in (5, 6, 7, 8) else (w, h)
            if short_side and img_format == "JPEG" and min(w, h) >= 2 * short_side:
                scale = short_side / min(w, h)
                img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
            if getattr(img, "is_animated", False):
                img.seek(0)
            img.load()
            if orientation in (2, 3, 4, 5, 6, 7, 8):  # otherwise exif_transpose only copies the image
                img = ImageOps.exif_transpose(img) or img
            if img.mode != "RGB":
                img = _to_rgb(img)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(path, str(exc)) from None
    except UnidentifiedImageError:
        raise InvalidImageError(path, f"corrupt {fmt} image: the data cannot be decoded") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(path, f"corrupt or truncated {fmt} image: {exc}") from None
    return reduce(img, short_side), img_format, upright


def reduce(img: Image.Image, short_side: int | None) -> Image.Image:
    """Scale down (never up) so the short side is ``short_side``."""
    w, h = img.size
    if not short_side or min(w, h) <= short_side:
        return img
    scale = short_side / min(w, h)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(
    path: str | os.PathLike[str], max_pixels: int, max_bytes: int,
    short_side: int | None = DEFAULT_DECODE_SIDE,
) -> DecodedImage:
    """Read and decode one file; every failure is an ImageError naming the path."""
    p = absolute(path)
    data, st = read_file(p, max_bytes)
    img, fmt, size = decode(data, p, max_pixels, short_side)
    return DecodedImage(
        path=str(p), image=img, format=fmt, size=size, file_size=st.st_size,
        mtime_ns=st.st_mtime_ns, content_hash=content_hash(data),
    )


def as_rgb(image: Image.Image, short_side: int | None = DEFAULT_DECODE_SIDE) -> Image.Image:
    """A caller's PIL image as upright RGB, reduced like decoded files are."""
    img = ImageOps.exif_transpose(image) or image
    img = _to_rgb(img) if img.mode != "RGB" else img.copy()
    return reduce(img, short_side)


def perceptual_hashes(image: Image.Image) -> tuple[str, str]:
    """64-bit pHash and dHash (hex) of an image: exactly ``str(imagehash.phash(image))`` and
    ``str(imagehash.dhash(image))`` (imagehash 4.3), computed from one grey copy and without
    imagehash's string building, which cost as much as the hashes themselves."""
    import scipy.fftpack

    gray = image if image.mode == "L" else image.convert("L")
    pixels = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)[:8, :8]
    small = np.asarray(gray.resize((9, 8), Image.Resampling.LANCZOS))
    return _hex64(dct > np.median(dct)), _hex64(small[:, 1:] > small[:, :-1])


def _hex64(bits: np.ndarray) -> str:
    """An (8, 8) boolean array as 16 hex digits, row-major, most significant bit first."""
    return np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes().hex()


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute and normalised (``a/../b`` -> ``b``) without resolving symlinks: one file given
    two ways is one record, while a link keeps the name the user gave it. ``~`` and ``$VARS``
    are expanded."""
    return Path(os.path.abspath(expand(path)))


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def scan_directory(directory: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Image files (by extension) in a directory, sorted; hidden files and folders skipped."""
    root = expand(directory)
    if not root.exists():
        raise ImageNotFoundError(root, "directory not found")
    if not root.is_dir():
        raise ImageNotFoundError(root, "not a directory")
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath, f) for f in filenames if not f.startswith(".") and is_image_name(f))
    else:
        found = [p for p in root.iterdir() if not p.name.startswith(".") and p.is_file() and is_image_name(p.name)]
    return sorted(absolute(p) for p in found)

