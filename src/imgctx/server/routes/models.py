"""Model load state and preloading (``/api/v1/models``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from imgctx.server.errors import now_iso
from imgctx.server.schemas import ModelsStatusResponse, PreloadResponse
from imgctx.server.state import AppState, get_state

router = APIRouter(prefix="/api/v1/models", tags=["models"])

#: The service contract's model keys and the role whose model each one reports, whatever the
#: backend (the contract was written for BLIP + CLIP + sentence-transformers). A processor loads
#: with its model, so it shares the model's state and its preload time is 0.
CONTRACT_KEYS = {
    "blip_processor": "captioner",
    "blip_model": "captioner",
    "clip_processor": "image_embedder",
    "clip_model": "image_embedder",
    "sentence_transformer": "text_embedder",
}


def _with_contract_keys(by_role: dict[str, Any], processor_value: Any = None) -> dict[str, Any]:
    out = dict(by_role)
    for key, role in CONTRACT_KEYS.items():
        if role in by_role and key not in out:
            out[key] = processor_value if processor_value is not None and key.endswith("_processor") \
                else by_role[role]
    return out


@router.get("/status", response_model=ModelsStatusResponse)
async def models_status(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Which models are loaded, per role, without loading any."""
    status = state.extractor.models.status()
    return {
        "models": _with_contract_keys({role: s.loaded for role, s in status.items()}),
        "details": {role: {"name": s.name, "loaded": s.loaded, "load_time": s.load_time, "device": s.device}
                    for role, s in status.items()},
        "device": state.settings.device,
        "timestamp": now_iso(),
    }


@router.post("/preload", response_model=PreloadResponse)
async def models_preload(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Load every model now; seconds per role and the total."""
    timings = await state.run(state.extractor.models.preload)
    total = timings.pop("total")
    timings = {**_with_contract_keys(timings, processor_value=0.0), "total": total}
    return {"success": True, "timings": timings, "device": state.settings.device, "timestamp": now_iso()}
