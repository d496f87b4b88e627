"""Swagger UI and ReDoc served from the package, so ``/docs`` and ``/redoc`` work offline.

FastAPI's own pages load their scripts from a CDN and render blank without internet. The
scripts and styles come from the ``fastapi-offline`` package (MIT), which ships Swagger UI
(Apache-2.0) and ReDoc (MIT) as files; they are served under ``/docs-assets``.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from imgctx import MissingDependencyError

ASSETS = "/docs-assets"


def _assets_folder() -> str:
    try:
        import fastapi_offline
    except ImportError:
        raise MissingDependencyError("the offline API docs pages", "server") from None
    return str(resources.files(fastapi_offline) / "static")


def install_docs(app: FastAPI, title: str) -> None:
    """``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` on assets served by the app itself
    (create the app with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=_assets_folder()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} - Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{title} - ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False)
