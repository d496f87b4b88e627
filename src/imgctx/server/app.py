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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgctx import Extractor, ImgctxError, ServerSettings, Settings, __version__
from imgctx.server.errors import envelope, error_body
from imgctx.server.routes import directories, duplicates, health, images, mixed, models, websockets
from imgctx.server.schemas import ERROR_RESPONSES
from imgctx.server.security import allowed_origins, origin_allowed, require_api_key, same_origin
from imgctx.server.state import AppState, Metrics
from imgctx.server.tasks import TaskManager, TaskStore
from imgctx.server.watch import start_watching, stop_watching

log = logging.getLogger("imgctx.server")

DESCRIPTION = """Captions, object tags, embeddings and text search for image collections, over HTTP
and WebSockets. Built on the `imgctx` library. Every error answers with the envelope
`{success: false, error, message, details: {status_code}, timestamp}`."""


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


class _UploadTooLarge(Exception):
    """Raised from ``receive`` once an upload's body is over the limit: it stops the reading."""


class _LimitUploads:
    """Pure ASGI middleware: refuses an upload over the limit with 413 in the envelope. A
    ``Content-Length`` over it is refused before the body is read; a body without one (chunked
    transfer encoding) is counted as it arrives and refused as soon as it passes the limit,
    without reading the rest (the upload route also counts the bytes of the file)."""

    def __init__(self, app: ASGIApp, path: str, limit: int) -> None:
        self.app = app
        self.path = path
        self.limit = limit

    def _refusal(self) -> JSONResponse:
        body = envelope(413, "UploadTooLargeError", f"upload is over the {self.limit}-byte limit", limit=self.limit)
        return JSONResponse(body, status_code=413, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await self._refusal()(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                raise _UploadTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_large = True
                    raise _UploadTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:  # the app's own answer to the interrupted body (a 400) is replaced
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:  # whatever the body parser made of the interruption
            if not too_large:
                raise
        if too_large and not started:
            await self._refusal()(scope, receive, send)


class _CheckOrigin:
    """Pure ASGI middleware: refuses with 403 a request that could change something (any method
    but GET, HEAD and OPTIONS) sent by a browser page of an origin that is not allowed. Without
    CORS a page cannot read the answer, but a form post (an upload) would still be carried out.
    Requests without ``Origin`` (clients that are not browsers) and pages of this server pass."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, server: ServerSettings) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.SAFE:
            headers = dict(scope["headers"])
            origin = headers.get(b"origin")
            if origin is not None:
                text = origin.decode("latin-1")
                host = headers.get(b"host")
                if not origin_allowed(self.server, text) and not same_origin(
                        text, host.decode("latin-1") if host is not None else None):
                    body = envelope(403, "OriginNotAllowedError",
                                    f"requests from the origin {text} are not allowed (see cors_origins)",
                                    origin=text)
                    await JSONResponse(body, status_code=403)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


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
        if code >= 500:
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
        if isinstance(exc, PermissionError):
            code = 403
        elif isinstance(exc, FileNotFoundError):
            code = 404
        elif exc.errno in (errno.ENAMETOOLONG, errno.EINVAL, errno.ELOOP):  # a bad path, not a fault
            code = 400
        else:
            code = 500
        where = f": {exc.filename}" if exc.filename else ""
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(envelope(code, type(exc).__name__, f"{exc.strerror or 'file system error'}{where}"),
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
        if state.owns_extractor:
            state.extractor = await state.run(Extractor, settings=state.settings)
        tasks_db = server.tasks_db or state.settings.db_path / "server_tasks.sqlite3"
        state.tasks = TaskManager(await state.run(TaskStore, tasks_db), state.hub)
        watcher = start_watching(state)
        try:
            yield
        finally:
            await stop_watching(watcher)
            await state.hub.close_all()
            await state.task_manager.shutdown()
            if state.owns_extractor:
                await state.run(state.extractor.close)
                state.extractor = None

    app = FastAPI(title="imgctx", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  responses=ERROR_RESPONSES)
    app.state.imgctx = state
    _install_error_handlers(app)
    app.include_router(health.public)
    # the key check (and its security scheme in the OpenAPI schema) only when a key is set
    protected = [Depends(require_api_key)] if server.api_key is not None else []
    for router in (health.router, models.router, images.router, directories.router, duplicates.router,
                   websockets.stats_router, mixed.router):
        app.include_router(router, dependencies=protected)
    app.include_router(websockets.router)  # each WebSocket checks the key itself
    # the last added is the outermost: counting, then CORS (so a 403 or 413 carries its headers),
    # then the origin check of writes, then the upload limit (multipart framing adds a little to
    # the file; the route checks exactly)
    app.add_middleware(_LimitUploads, path="/api/v1/images/upload", limit=server.max_upload_bytes + 64 * 1024)
    app.add_middleware(_CheckOrigin, server=server)
    origins = allowed_origins(server)
    if origins:  # none by default: no page on another origin may read or call the API
        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["*"],
                           allow_headers=["*"], allow_credentials="*" not in origins)
    app.add_middleware(_CountRequests, metrics=state.metrics)
    return app


def create_app_from_env() -> FastAPI:
    """``create_app()`` with settings from the environment: the import string for ``--dev`` reload."""
    return create_app()
