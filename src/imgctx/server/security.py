"""Optional API-key authentication (off unless ``api_key`` is set)."""

from __future__ import annotations

import secrets

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

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
