"""Confinement of client-given paths to the allowed roots, and upload file names.

A path is resolved the way the kernel would open it (symlinks followed, ``..`` collapsed)
before it is compared with the roots, so neither a link nor ``..`` can lead outside them.
Relative paths are taken relative to the first root.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from imgctx.server.errors import BadRequestError, PathNotAllowedError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 200
#: Longer or deeper client paths are refused with 400 before the file system sees them.
MAX_PATH_CHARS = 4096
MAX_PATH_DEPTH = 128


class PathGuard:
    """The allowed roots (resolved once, at start-up) and the checks against them."""

    def __init__(self, roots: Sequence[str | os.PathLike[str]]) -> None:
        if not roots:
            roots = [Path.cwd()]
        resolved = []
        for root in roots:
            try:
                resolved.append(Path(root).resolve())
            except (OSError, ValueError, RuntimeError) as exc:
                raise BadRequestError(f"allowed root {root!s} cannot be resolved: {exc}") from None
        self.roots: tuple[Path, ...] = tuple(resolved)

    @property
    def base(self) -> Path:
        """Where relative paths start: the first allowed root."""
        return self.roots[0]

    def allowed(self, path: Path) -> bool:
        return any(path == root or path.is_relative_to(root) for root in self.roots)

    def resolve(self, value: str | os.PathLike[str], what: str = "path") -> Path:
        """The real path for a client-given one; PathNotAllowedError when it is outside the roots."""
        text = os.fspath(value)
        if not text or not str(text).strip():
            raise BadRequestError(f"{what} is empty", field=what)
        if "\x00" in text:
            raise BadRequestError(f"{what} contains a NUL character", field=what)
        if len(text) > MAX_PATH_CHARS or text.count("/") + text.count("\\") > MAX_PATH_DEPTH:
            raise BadRequestError(f"{what} is longer than {MAX_PATH_CHARS} characters or deeper than "
                                  f"{MAX_PATH_DEPTH} folders", field=what)
        p = Path(text)
        if not p.is_absolute():
            p = self.base / p
        try:
            real = p.resolve()
        except (OSError, ValueError, RuntimeError) as exc:  # a link loop, an unencodable name
            raise BadRequestError(f"{what} cannot be resolved: {exc}", field=what) from None
        if not self.allowed(real):
            raise PathNotAllowedError(
                f"{what} is outside the allowed roots: {text}", field=what,
            )
        return real


def safe_filename(name: str | None, fallback: str = "upload") -> str:
    """A file name with no folder part, no leading dot and only ``[A-Za-z0-9._-]``."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _UNSAFE.sub("_", base).strip("._-") or fallback
    if len(base) > _MAX_NAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: _MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:_MAX_NAME]
    return base
