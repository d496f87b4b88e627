"""How the CLI names a record: its id, a unique prefix of its id, or its file's path."""

from __future__ import annotations

import os
from typing import Any

from imgctx._errors import ConfigurationError, RecordNotFoundError
from imgctx._paths import expand
from imgctx._types import ImageRecord

#: Shortest id prefix accepted (ids are 32 hex digits or so; fewer than 4 is rarely unique).
MIN_PREFIX = 4


def looks_like_path(ref: str) -> bool:
    return os.sep in ref or ref.startswith(("~", "$", ".")) or os.path.exists(expand(ref))


def resolve(ex: Any, ref: str) -> ImageRecord:
    """The record ``ref`` names: an exact id, a file path (indexed), or a unique id prefix.
    RecordNotFoundError when none matches; ConfigurationError when a prefix is ambiguous. Uses
    only what a local Extractor and a server's client both offer (``get``, ``get_by_path``,
    ``list``)."""
    try:
        return ex.get(ref)  # type: ignore[no-any-return]
    except RecordNotFoundError:
        pass
    if looks_like_path(ref):
        record = ex.get_by_path(str(expand(ref)))
        if record is None:
            raise ConfigurationError(f"{ref} is not indexed")
        return record  # type: ignore[no-any-return]
    if len(ref) >= MIN_PREFIX:
        matches = [r for r in _every_record(ex) if r.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ConfigurationError(
                f"{ref!r} is the start of {len(matches)} ids ({', '.join(r.id for r in matches[:3])}"
                f"{', ...' if len(matches) > 3 else ''}): give more of it")
    raise RecordNotFoundError(ref)


def _every_record(ex: Any, page: int = 1000) -> list[ImageRecord]:
    out: list[ImageRecord] = []
    while True:
        chunk = ex.list(limit=page, offset=len(out))
        out.extend(chunk)
        if len(chunk) < page:
            return out
