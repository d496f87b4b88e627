"""Search scoring: each vector space's nearest neighbours from the store, fused into one score
in [0, 1] per image (see ``Extractor.search``), and the checks of search arguments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imgctx._backends.store_common import normalise_objects
from imgctx._errors import ConfigurationError
from imgctx._filters import RecordFilter, check_filters
from imgctx._types import SearchHit

Filters = dict[str, Any]


def filter_of(filters: Filters) -> RecordFilter | None:
    """The keyword filters of search/list/count as one RecordFilter (None: none asked)."""
    return check_filters(filters)


def where_kw(where: RecordFilter | None) -> dict[str, Any]:
    """The ``where`` keyword for a store call, left out when no filter is asked, so that stores
    that know nothing of it keep working without one."""
    return {} if where is None else {"where": where}



def check_search_args(limit: int, min_score: float | None, offset: int = 0) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise ConfigurationError(f"limit must be an integer, got {limit!r}")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ConfigurationError(f"offset must be a non-negative integer, got {offset!r}")
    if min_score is not None and (not isinstance(min_score, (int, float)) or isinstance(min_score, bool)):
        raise ConfigurationError(f"min_score must be a number, got {min_score!r}")
    if limit < 0:
        raise ConfigurationError(f"limit must not be negative, got {limit}")
    if min_score is not None and not 0.0 <= min_score <= 1.0:
        raise ConfigurationError(f"min_score must be between 0 and 1, got {min_score}")


def calibrate(similarity: float, cosine_range: tuple[float, float] | None = None) -> float:
    """A cosine as a score in [0, 1]: clipped, or with a (low, high) range mapped linearly."""
    if cosine_range is not None:
        low, high = cosine_range
        similarity = (similarity - low) / (high - low)
    return min(1.0, max(0.0, float(similarity)))



def fused_search(store: Any, space_weights: Mapping[str, float], vectors: dict[str, np.ndarray],
                 objects: Sequence[str] | str | None, limit: int, min_score: float | None,
                 exclude: set[str] | None = None, ranges: dict[str, tuple[float, float]] | None = None,
                 where: RecordFilter | None = None, offset: int = 0) -> list[SearchHit]:
    """The best hits for query ``vectors`` (per space): the store's neighbours in each space,
    the missing similarities from stored vectors, each calibrated (``ranges``) and averaged by
    ``space_weights``; ``offset`` skips that many of the best."""
    if limit <= 0 or not vectors:
        return []
    wanted = normalise_objects(objects)
    weights = {s: space_weights.get(s, 1.0) for s in vectors}
    weights = {s: w for s, w in weights.items() if w > 0} or {s: 1.0 for s in vectors}
    k = max((limit + offset) * 4, 50) + len(exclude or ())
    sims: dict[str, dict[str, float]] = {s: {} for s in weights}
    for space in weights:
        for rid, sim in store.query(space, vectors[space], k, wanted, **where_kw(where)):
            sims[space][rid] = sim
    candidates = {rid for table in sims.values() for rid in table} - (exclude or set())
    for space in weights:
        missing = [rid for rid in candidates if rid not in sims[space]]
        if missing:
            stored = store.vectors(space, missing)
            for rid, vec in stored.items():
                sims[space][rid] = float(np.dot(vec, vectors[space]))
    total = sum(weights.values())
    scored = []
    for rid in candidates:
        parts = {s: calibrate(sims[s].get(rid, 0.0), (ranges or {}).get(s)) for s in weights}
        score = sum(weights[s] * parts[s] for s in weights) / total
        if min_score is None or score >= min_score:
            scored.append((score, rid, parts))
    scored.sort(key=lambda t: (-t[0], t[1]))
    top = scored[offset: offset + limit]
    records = {r.id: r for r in store.get_many([rid for _, rid, _ in top])}
    return [SearchHit(records[rid], score, parts) for score, rid, parts in top if rid in records]
