"""Record ids: one stable id per absolute path (a low module every layer may import)."""

from __future__ import annotations

import hashlib


def record_id_for(path: str) -> str:
    """Stable id of the record for an absolute path."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]
