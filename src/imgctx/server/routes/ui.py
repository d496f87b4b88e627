"""The web app: the page at ``/``, its static files under ``/static`` and ``GET /api/v1/ui/config``.

The page and its assets need no API key (they hold no data); everything they show comes from
the API, with the key the page asks for. A Content-Security-Policy keeps every request of the
page on this origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from imgctx import __version__
from imgctx.server.schemas import UIConfig
from imgctx.server.state import AppState, get_state

STATIC = Path(__file__).resolve().parent.parent / "static"
#: Only this origin: scripts, styles, images (and blob: ones made from them), fetch and WebSockets.
CSP = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; script-src 'self'; "
       "style-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

public = APIRouter(include_in_schema=False)
router = APIRouter(prefix="/api/v1/ui", tags=["ui"])


@public.get("/")
async def index() -> FileResponse:
    """The web app's one page."""
    return FileResponse(STATIC / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                 "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})


@router.get("/config", response_model=UIConfig)
async def ui_config(state: AppState = Depends(get_state)) -> UIConfig:
    """What the web app adapts to: the models' abilities, where uploads go, the allowed roots."""
    ex = state.extractor
    components = ex.components
    return UIConfig(
        version=__version__,
        caption_from_tags=bool(getattr(components.captioner, "from_tags", False)),
        image_search=components.image_embedder is not None or components.text_embedder is not None,
        upload_dir=state.server.upload_dir,
        allowed_roots=[str(root) for root in state.guard.roots],
        total_images=await state.run(ex.count),
    )


def public_paths() -> frozenset[str]:
    """The page and each of its files: open without the API key."""
    return frozenset({"/", *(f"/static/{f.name}" for f in STATIC.iterdir() if f.is_file())})


def mount_static(app: FastAPI) -> None:
    """Serve the app's files (HTML, CSS, JavaScript modules) under ``/static``."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
