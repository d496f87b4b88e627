"""User paths as users write them: ``~`` and ``$VARS`` expanded wherever a path is taken."""

from __future__ import annotations

import os
from pathlib import Path


def expand(path: str | os.PathLike[str]) -> Path:
    """``~``, ``~user``, ``$VAR`` and ``${VAR}`` expanded (an unset variable is left as written)."""
    return Path(os.path.expandvars(os.path.expanduser(os.fspath(path))))
