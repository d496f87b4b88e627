"""Deleting a file so that no swapped link can redirect the deletion.

A check of the path followed by ``unlink(path)`` leaves a window: a folder on the path replaced
by a symbolic link in between sends the unlink elsewhere. :func:`delete_file` has no such window.
It resolves the folder once, requires it inside one of ``within`` (the filesystem root when none
is given), then opens each folder from that root down with ``O_NOFOLLOW`` (a link anywhere on the
way fails the open) and unlinks the name relative to the last descriptor (``dir_fd``): the check
and the deletion are the same walk.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from imgctx._errors import FileOutsideRootsError

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: True where folders can be opened without following links and unlinked relative to them.
SUPPORTED = hasattr(os, "O_NOFOLLOW") and os.unlink in os.supports_dir_fd


def _roots(within: Sequence[str | os.PathLike[str]] | None) -> list[Path]:
    if within is None:
        return [Path(Path.cwd().anchor or "/")]
    return [Path(r).resolve() for r in within]


def root_of(path: str | os.PathLike[str], within: Sequence[str | os.PathLike[str]] | None) -> Path | None:
    """The folder of ``within`` that holds the (resolved) folder of ``path``, or None."""
    folder = Path(os.path.abspath(path)).parent.resolve()
    for root in _roots(within):
        if folder == root or folder.is_relative_to(root):
            return root
    return None


def delete_file(path: str | os.PathLike[str], within: Sequence[str | os.PathLike[str]] | None = None) -> bool:
    """Delete the file at ``path`` (a link itself, never its target): True when it was deleted,
    False when it was already missing.

    With ``within``, only inside those folders. FileOutsideRootsError when the folder is outside
    them, or when a folder on the way is (or became) a symbolic link; an OSError when the
    deletion itself fails.
    """
    p = Path(os.path.abspath(path))
    if not SUPPORTED:  # pragma: no cover - Windows: no O_NOFOLLOW walk; refuse rather than race
        raise FileOutsideRootsError(p, "deleting files is not supported on this platform")
    try:
        folder = p.parent.resolve(strict=True)
    except FileNotFoundError:
        return False
    except (OSError, RuntimeError) as exc:
        raise FileOutsideRootsError(p, f"its folder cannot be resolved: {exc}") from None
    root = next((r for r in _roots(within) if folder == r or folder.is_relative_to(r)), None)
    if root is None:
        raise FileOutsideRootsError(p, "outside the folders files may be deleted from")
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in folder.relative_to(root).parts:
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise FileOutsideRootsError(p, "a folder on its path is a symbolic link; not deleted") from None
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
