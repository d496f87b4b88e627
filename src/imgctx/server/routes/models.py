"""Model load state and preloading (``/api/v1/models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from imgctx.server.errors import now_iso
from imgctx.server.schemas import ModelsStatusResponse, PreloadResponse
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/models", tags=["models"])


@router.get("/status", response_model=ModelsStatusResponse)
async def models_status(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Which models are loaded, per role, without loading any."""
    status = state.extractor.models.status()
    return {
        "models": {role: s.loaded for role, s in status.items()},
        "details": {role: {"name": s.name, "loaded": s.loaded, "load_time": s.load_time, "device": s.device}
                    for role, s in status.items()},
        "device": state.settings.device,
        "timestamp": now_iso(),
    }


@router.post("/preload", response_model=PreloadResponse)
async def models_preload(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Load every model now; seconds per role and the total."""
    timings = await state.run(state.extractor.models.preload)
    return {"success": True, "timings": timings, "device": state.settings.device, "timestamp": now_iso()}
