"""Optional API-key authentication (off unless ``api_key`` is set) and the allowed browser origins."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from imgctx import ServerSettings
from imgctx.server.errors import AuthenticationError
from imgctx.server.state import AppState

API_KEY_HEADER = "X-API-Key"
_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's api_key setting")


def key_matches(state: AppState, provided: str | None) -> bool:
    """True when no key is configured, or ``provided`` equals it (compared in constant time)."""
    expected = state.server.api_key
    if expected is None:
        return True
    return provided is not None and secrets.compare_digest(provided.encode(), expected.get_secret_value().encode())


async def require_api_key(request: Request, provided: str | None = Depends(_header)) -> None:
    """Route dependency: 401 in the error envelope unless the X-API-Key header is right."""
    if not key_matches(request.app.state.imgctx, provided):
        raise AuthenticationError(f"missing or wrong {API_KEY_HEADER} header")


def allowed_origins(server: ServerSettings) -> tuple[str, ...]:
    """The origins that browsers may use the API from: ``cors_origins``; when that is empty, none,
    except in development (``dev``), which allows all (``*``)."""
    if server.cors_origins:
        return server.cors_origins
    return ("*",) if server.dev else ()


def origin_allowed(server: ServerSettings, origin: str | None) -> bool:
    """True for a request without an ``Origin`` header (not from a browser page) or from an
    allowed origin; a WebSocket handshake from any other page is refused."""
    if origin is None:
        return True
    origins = allowed_origins(server)
    return "*" in origins or origin in origins


def same_origin(origin: str, host: str | None) -> bool:
    """True when ``origin`` (``http://127.0.0.1:8000``) names the host the request was sent to
    (its ``Host`` header): a page served by this server itself, such as ``/docs``."""
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()
