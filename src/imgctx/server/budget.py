"""A memory budget for image decodes running at the same time (``decode_memory_bytes``).

A small compressed file can hold a huge image (a 12 KB PNG of 9999x9999 pixels decodes to
300 MB), so the file size says nothing about the memory a decode takes. Before a decode, the
image's header is read (no pixels) to estimate what decoding it holds at once: every pixel at
its mode's size, a converted RGB copy when the mode is not RGB, and the file's bytes. A decode
starts only when its estimate fits in what the running decodes leave of the budget; it waits
otherwise. An image whose estimate alone is over the budget is refused (413).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from imgctx import ImageTooLargeError
from imgctx.server.errors import DecodeBusyError

T = TypeVar("T")

#: Bytes per pixel of PIL's modes (others count 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}
#: How long a decode waits for its share of the budget before the request is refused (503).
WAIT_SECONDS = 120.0


def decode_estimate(path: str | os.PathLike[str], max_pixels: int) -> int:
    """Bytes a decode of the file holds at once, from its header; the file size alone for a file
    PIL cannot read or an image over ``max_pixels`` (the decode refuses those before any pixel)."""
    from PIL import Image

    try:
        size = os.stat(path).st_size
    except OSError:
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                width, height = img.size
                mode = img.mode
    except Exception:  # noqa: BLE001 - not an image, or one PIL cannot parse: the decode will say so
        return size
    pixels = width * height
    if pixels > max_pixels:
        return size
    per_pixel = _MODE_BYTES.get(mode, 4) + (0 if mode == "RGB" else 3)
    return pixels * per_pixel + size


class DecodeBudget:
    """Shared by the worker threads: ``run(paths, fn)`` calls ``fn`` once the estimates for the
    files fit in the budget. ``peak`` is the most ever reserved at once."""

    def __init__(self, total: int, max_pixels: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.total = total
        self.wait_seconds = wait_seconds
        self.max_pixels = max_pixels
        self.in_use = 0
        self.peak = 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.total:
            raise ImageTooLargeError(None, f"decoding it needs about {nbytes} bytes, over the server's "
                                           f"decode_memory_bytes ({self.total})")
        deadline = time.monotonic() + self.wait_seconds
        with self._cond:
            while self.in_use + nbytes > self.total:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DecodeBusyError("the server is busy decoding other images; try again",
                                          retry_after=5)
                self._cond.wait(left)
            self.in_use += nbytes
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._cond:
                self.in_use -= nbytes
                self._cond.notify_all()

    def run(self, paths: Sequence[str | os.PathLike[str]], fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` within the budget for decoding ``paths`` (call it in a worker thread)."""
        with self.reserve(sum(decode_estimate(p, self.max_pixels) for p in paths)):
            return fn(*args, **kwargs)


def return_freed_memory(threshold: int = 1 << 20) -> bool:
    """Make freed decode buffers go back to the operating system (glibc only; True when set).

    glibc serves a large block from a thread's own arena once a block of that size has been
    freed, and keeps the freed memory there: decodes that run one after another on different
    worker threads would each leave their image's memory behind, and the server's memory would
    grow to one image per thread despite the budget. With a fixed ``M_MMAP_THRESHOLD`` every
    block over ``threshold`` is mapped on its own and unmapped when freed. ``imgctx serve`` sets
    it; an application that embeds the app decides for its own process.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    m_mmap_threshold = -3
    return bool(mallopt(m_mmap_threshold, threshold))
