"""The app factory: ``create_app(settings, extractor, server_settings)``; no module-level app."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgctx import Extractor, ImgctxError, ServerSettings, Settings, __version__
from imgctx.server.docs import install_docs
from imgctx.server.errors import DISK_FULL, disk_full, envelope, error_body
from imgctx.server.guards import PUBLIC_PATHS, CheckHost, CheckOrigin, LimitBodies, RequireKey
from imgctx.server.logs import install_redaction
from imgctx.server.routes import (
    directories,
    duplicates,
    health,
    images,
    models,
    records,
    search,
    thumbnails,
    ui,
    websockets,
)
from imgctx.server.schemas import ERROR_RESPONSES
from imgctx.server.security import allowed_origins, require_api_key
from imgctx.server.state import AppState, Metrics
from imgctx.server.tasks import TaskManager, TaskStore

log = logging.getLogger("imgctx.server")
UPLOAD_PATH = "/api/v1/images/upload"
#: The routes that take an upload, limited by max_upload_bytes instead of max_body_bytes.
UPLOAD_PATHS = (UPLOAD_PATH, records.UPLOAD_PATH)

DESCRIPTION = """Captions, object tags, embeddings and text search for image collections, over HTTP
and WebSockets. Built on the `imgctx` library. Every error answers with the envelope
`{success: false, error, message, details: {status_code}, timestamp}`."""

#: The OpenAPI tags, one per area, in the order the documentation shows them.
OPENAPI_TAGS = [
    {"name": "search", "description": "Search by text, by an uploaded image, or by a stored image's id"},
    {"name": "images", "description": "Process, upload, download, list and delete single images"},
    {"name": "records", "description": "Stored records with every field of the library's ImageRecord"},
    {"name": "directories", "description": "Process or scan folders; background tasks"},
    {"name": "duplicates", "description": "Exact and near-duplicate detection, comparison and removal"},
    {"name": "models", "description": "Model load state and preloading"},
    {"name": "health", "description": "Health, status, configuration, metrics and service info"},
    {"name": "websockets", "description": "WebSocket connection statistics"},
    {"name": "ui", "description": "What the web app at / adapts to"},
]


class _CountRequests:
    """Pure ASGI middleware: counts HTTP responses by status and their time, for /metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.record(status, time.perf_counter() - start)


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI operation id: its endpoint's name (``search_images``, ``get_image``), so
    that generated clients get short, stable function names."""
    return route.name


def _validation_message(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    listed = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]
    first = listed[0] if listed else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"])
    more = f" (and {len(listed) - 1} more)" if len(listed) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}", listed


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImgctxError)
    async def imgctx_error(request: Request, exc: ImgctxError) -> JSONResponse:
        code, body = error_body(exc)
        if code >= 500:  # a full disk too: the operator needs to see it
            log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return JSONResponse(body, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, errors = _validation_message(list(exc.errors()))
        return JSONResponse(envelope(422, "ValidationError", message, errors=errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        try:
            phrase = HTTPStatus(exc.status_code).phrase
        except ValueError:
            phrase = "HTTP"
        name = phrase.replace(" ", "").replace("-", "") + ("" if phrase.endswith("Error") else "Error")
        message = exc.detail if isinstance(exc.detail, str) else phrase
        return JSONResponse(envelope(exc.status_code, name, message), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(OSError)
    async def os_error(request: Request, exc: OSError) -> JSONResponse:
        """A file-system refusal (permissions, a vanished file): its reason, never a traceback."""
        name = type(exc).__name__
        if disk_full(exc):
            code, name = DISK_FULL, "DiskFullError"
        elif isinstance(exc, PermissionError):
            code = 403
        elif isinstance(exc, FileNotFoundError):
            code = 404
        elif exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP):  # a bad path, not a fault
            code = 400
        else:
            code = 500
        where = f": {exc.filename}" if exc.filename else ""
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        full = "disk full: " if code == DISK_FULL else ""
        return JSONResponse(envelope(code, name, f"{full}{exc.strerror or 'file system error'}{where}"),
                            status_code=code)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(
            envelope(500, "InternalServerError", "An unexpected error occurred; the server log has the details."),
            status_code=500,
        )


def create_app(settings: Settings | None = None, extractor: Extractor | None = None,
               server_settings: ServerSettings | None = None) -> FastAPI:
    """A new FastAPI app serving the imgctx REST and WebSocket API.

    With ``extractor`` the app uses it (and leaves it open at shutdown); otherwise it opens an
    Extractor from ``settings`` (default: ``Settings()`` from the environment) when it starts
    and closes it when it stops. ``server_settings`` default to ``ServerSettings()``.
    """
    server = server_settings if server_settings is not None else ServerSettings()
    if extractor is not None:
        settings = extractor.settings
    elif settings is None:
        settings = Settings()
    state = AppState(settings, server, extractor)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_redaction()  # now: the server has configured its logging by the time it starts
        if state.owns_extractor:
            state.extractor = await state.run(Extractor, settings=state.settings)
        tasks_db = server.tasks_db or state.settings.db_path / "server_tasks.sqlite3"
        state.tasks = TaskManager(await state.run(TaskStore, tasks_db), state.hub)
        try:
            yield
        finally:
            await state.hub.close_all()
            await state.task_manager.shutdown()
            if state.owns_extractor:
                await state.run(state.extractor.close)
                state.extractor = None

    app = FastAPI(title="imgctx", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  responses=ERROR_RESPONSES, docs_url=None, redoc_url=None,
                  generate_unique_id_function=operation_id, openapi_tags=OPENAPI_TAGS)
    install_docs(app, "imgctx")  # Swagger UI and ReDoc from the package, not a CDN
    app.state.imgctx = state
    _install_error_handlers(app)
    app.include_router(health.public)
    # the key check (and its security scheme in the OpenAPI schema) only when a key is set
    protected = [Depends(require_api_key)] if server.api_key is not None else []
    for router in (health.router, models.router, thumbnails.router, images.router, directories.router,
                   duplicates.router, search.router, records.search_router, records.router, ui.router,
                   websockets.stats_router):
        app.include_router(router, dependencies=protected)
    app.include_router(websockets.router)  # each WebSocket checks the key itself
    app.include_router(ui.public)  # the web app's page and files hold no data: no key
    ui.mount_static(app)
    # the last added is the outermost: counting, the Host allow-list, CORS (so a 403 or 413
    # carries its headers), the origin check of writes, the API key, then the body limits
    app.add_middleware(LimitBodies, server=server, upload_paths=(*UPLOAD_PATHS, search.IMAGE_SEARCH_PATH))
    app.add_middleware(RequireKey, server=server, public=PUBLIC_PATHS | ui.public_paths())
    app.add_middleware(CheckOrigin, server=server)
    origins = allowed_origins(server)
    if origins:  # none by default: no page on another origin may read or call the API
        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["*"],
                           allow_headers=["*"], allow_credentials="*" not in origins)
    app.add_middleware(CheckHost, server=server)
    app.add_middleware(_CountRequests, metrics=state.metrics)
    return app


def create_app_from_env() -> FastAPI:
    """``create_app()`` with settings from the environment: the import string for ``--dev`` reload."""
    return create_app()
