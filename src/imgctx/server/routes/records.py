"""Records as the library holds them (``/api/v1/records``): every field of ``ImageRecord``.

The contract's ``/api/v1/images`` routes answer with its ``image_info`` subset; these answer
with everything (exact tag scores, hashes, timestamps), which is what ``imgctx.connect()``
needs to return the same records as a local ``Extractor``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from imgctx.server.record_schemas import CountResponse, RecordOut, RecordPage
from imgctx.server.routes.images import objects_list
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/records", tags=["records"])

OBJECTS = Query(None, max_length=2000, description="Comma-separated objects, any of them", examples=["cat,dog"])


@router.get("", response_model=RecordPage)
async def list_records(
    objects: str | None = OBJECTS,
    limit: int = Query(100, ge=0, le=1000),
    offset: int = Query(0, ge=0, le=2**31),
    state: AppState = Depends(get_state),
) -> RecordPage:
    """Records in insertion order, optionally only those tagged with any of ``objects``."""
    wanted = objects_list(objects)
    ex = state.extractor

    def work() -> RecordPage:
        records = ex.list(objects=wanted, limit=limit, offset=offset)
        return RecordPage(records=[RecordOut.of(r) for r in records], total=ex.count(objects=wanted),
                          limit=limit, offset=offset)

    return await state.run(work)


@router.get("/count", response_model=CountResponse)
async def count_records(objects: str | None = OBJECTS, state: AppState = Depends(get_state)) -> CountResponse:
    """How many records there are, optionally only those tagged with any of ``objects``."""
    wanted = objects_list(objects)
    return CountResponse(count=await state.run(state.extractor.count, objects=wanted), objects=wanted)


@router.get("/{record_id}", response_model=RecordOut)
async def get_record(record_id: str, state: AppState = Depends(get_state)) -> RecordOut:
    """The record with this id (404 ``RecordNotFoundError`` if there is none)."""
    return RecordOut.of(await state.run(state.extractor.get, record_id))
