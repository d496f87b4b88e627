"""The pure ASGI middlewares that refuse a request before any route (or body parser) sees it.

From the outside in: the ``Host`` allow-list (no DNS rebinding), the origin check of writes,
the API key, then the body limits. Each refusal is the contract's error envelope. None of them
reads a body: the key is checked on the headers, and a body over its limit is refused by its
``Content-Length`` or, without one, as soon as the bytes that arrived pass the limit.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgctx import ServerSettings
from imgctx.server.errors import envelope
from imgctx.server.security import (
    API_KEY_HEADER,
    allowed_hosts,
    host_name,
    key_matches_value,
    origin_allowed,
    same_origin,
)

#: Paths open without the API key.
PUBLIC_PATHS = frozenset({"/api/v1/health"})
#: What multipart framing may add to an upload's file.
MULTIPART_SLACK = 64 * 1024


def _refusal(status: int, error: str, message: str, headers: dict[str, str] | None = None,
             **details: Any) -> JSONResponse:
    return JSONResponse(envelope(status, error, message, **details), status_code=status, headers=headers)


class CheckHost:
    """Refuses with 400 ``HostNotAllowedError`` any request, WebSockets included, whose ``Host``
    header is not an allowed host name: a page of a hostile name that resolves to this machine
    (DNS rebinding) sends that name, so it gets no answer."""

    def __init__(self, app: ASGIApp, server: ServerSettings) -> None:
        self.app = app
        self.hosts = allowed_hosts(server)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hosts is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"]).get(b"host")
        name = host_name(raw.decode("latin-1")) if raw is not None else None
        if name in self.hosts:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refuse the handshake (HTTP 403)
            await send({"type": "websocket.close", "code": 1008, "reason": "host not allowed"})
            return
        shown = (name or "(none)")[:255]
        await _refusal(400, "HostNotAllowedError",
                       f"this server does not answer to the host {shown} (see allowed_hosts)",
                       host=shown)(scope, receive, send)


class CheckOrigin:
    """Refuses with 403 a request that could change something (any method but GET, HEAD and
    OPTIONS) sent by a browser page of an origin that is not allowed. Without CORS a page cannot
    read the answer, but a form post (an upload) would still be carried out. Requests without
    ``Origin`` (clients that are not browsers) and pages of this server (same scheme and host)
    pass."""

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
                        text, host.decode("latin-1") if host is not None else None, scope.get("scheme", "http")):
                    await _refusal(403, "OriginNotAllowedError",
                                   f"requests from the origin {text[:300]} are not allowed (see cors_origins)",
                                   origin=text[:300])(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class RequireKey:
    """With an API key set, refuses with 401 an HTTP request without the right ``X-API-Key``
    before its body is read (the OpenAPI schema and the docs pages included). Only
    :data:`PUBLIC_PATHS` are open; WebSockets check the key themselves (close code 1008)."""

    def __init__(self, app: ASGIApp, server: ServerSettings, public: Collection[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.server = server
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.server.api_key is None or scope["type"] != "http" or scope["path"] in self.public
                or scope["method"] == "OPTIONS"):  # a CORS preflight carries no key
            await self.app(scope, receive, send)
            return
        provided = dict(scope["headers"]).get(API_KEY_HEADER.lower().encode())
        if key_matches_value(self.server, provided.decode("latin-1") if provided is not None else None):
            await self.app(scope, receive, send)
            return
        await _refusal(401, "AuthenticationError", f"missing or wrong {API_KEY_HEADER} header",
                       headers={"Connection": "close"})(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a body is over its limit: it stops the reading."""


class LimitBodies:
    """Refuses a body over its limit with 413 in the envelope: uploads (``upload_paths``) over
    ``max_upload_bytes`` (plus :data:`MULTIPART_SLACK` for the multipart framing; the upload route
    counts the file exactly), every other body over ``max_body_bytes``. A ``Content-Length``
    over the limit is refused before the body is read; a body without one (chunked transfer
    encoding) is counted as it arrives and refused as soon as it passes the limit, without
    reading the rest."""

    def __init__(self, app: ASGIApp, server: ServerSettings, upload_paths: Collection[str]) -> None:
        self.app = app
        self.upload_paths = frozenset(upload_paths)
        self.upload_limit = server.max_upload_bytes
        self.body_limit = server.max_body_bytes

    def _limits(self, path: str) -> tuple[str, int, int]:
        """(error name, limit to show, limit to enforce) for a path."""
        if path in self.upload_paths:
            return "UploadTooLargeError", self.upload_limit, self.upload_limit + MULTIPART_SLACK
        return "BodyTooLargeError", self.body_limit, self.body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error, shown, limit = self._limits(scope["path"])
        what = "upload" if error == "UploadTooLargeError" else "request body"
        refusal = _refusal(413, error, f"{what} is over the {shown}-byte limit", headers={"Connection": "close"},
                           limit=shown)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await refusal(scope, receive, send)
            return
        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
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
            await refusal(scope, receive, send)
