"""Deleting a file inside the allowed roots so that no swapped link can redirect the deletion.

A check of the path followed by ``unlink(path)`` leaves a window: a folder on the path replaced
by a symbolic link in between sends the unlink outside the roots. :func:`confined_unlink` has no
such window. It resolves the folder once, requires it inside a root, then opens each folder from
the root down with ``O_NOFOLLOW`` (a link anywhere on the way fails the open) and unlinks the name
relative to the last descriptor (``dir_fd``): the check and the deletion are the same walk.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from imgctx.server.errors import PathNotAllowedError
from imgctx.server.paths import PathGuard

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: True where folders can be opened without following links and unlinked relative to them.
SUPPORTED = hasattr(os, "O_NOFOLLOW") and os.unlink in os.supports_dir_fd


def _root_of(guard: PathGuard, folder: Path) -> Path | None:
    for root in guard.roots:
        if folder == root or folder.is_relative_to(root):
            return root
    return None


def confined_unlink(guard: PathGuard, path: str | os.PathLike[str]) -> bool:
    """Delete the file at ``path`` (a link itself, never its target) if it lies inside the roots.

    True when it was deleted, False when it was already missing. PathNotAllowedError when the
    folder is outside the roots, or when a folder on the way is (or became) a symbolic link.
    """
    p = Path(os.path.abspath(path))
    if not SUPPORTED:  # pragma: no cover - Windows: no O_NOFOLLOW walk; refuse rather than race
        raise PathNotAllowedError(f"deleting files is not supported on this platform: {p}", field="path")
    try:
        folder = p.parent.resolve(strict=True)
    except FileNotFoundError:
        return False
    except (OSError, RuntimeError) as exc:
        raise PathNotAllowedError(f"the folder of {p} cannot be resolved: {exc}", field="path") from None
    root = _root_of(guard, folder)
    if root is None:
        raise PathNotAllowedError(f"path is outside the allowed roots: {p}", field="path")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in folder.relative_to(root).parts:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise PathNotAllowedError(
                        f"a folder on the path of {p} is a symbolic link; the file is not deleted",
                        field="path") from None
                if exc.errno == errno.ENOENT:
                    return False
                raise
            os.close(fd)
            fd = inner
        try:
            os.unlink(p.name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)
