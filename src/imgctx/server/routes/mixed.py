"""``GET /api/v1/search/mixed``: combined queries (weighted text and image terms added and
subtracted), image terms confined to the allowed roots like every other path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query

from imgctx import normalise_objects, parse_mixed_query
from imgctx.server.schemas import SearchResult
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/search", tags=["images"])


@router.get("/mixed", response_model=list[SearchResult], response_model_exclude_none=True)
async def search_mixed(
    query: str = Query(..., min_length=1, max_length=2000,
                       description='Combined query, e.g. 2 * "golden retriever" + photos/pool.jpg - "people"'),
    objects: str | None = Query(None, max_length=2000, description="Comma-separated objects, any of them"),
    limit: int = Query(10, ge=1, le=1000),
    min_score: float | None = Query(None, ge=0.0, le=1.0),
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """Images matching a combined query; image terms are paths inside the allowed roots."""
    terms = [(w, state.guard.resolve(t, "query") if isinstance(t, Path) else t) for w, t in parse_mixed_query(query)]
    hits = await state.run(state.extractor.search_mixed, terms, objects=normalise_objects(objects), limit=limit,
                           min_score=min_score)
    return [SearchResult.data(h, True) for h in hits]
