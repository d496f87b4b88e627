"""Optional API-key authentication (off unless ``api_key`` is set) and the allowed browser origins."""

from __future__ import annotations

import ipaddress
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
    return key_matches_value(state.server, provided)


def key_matches_value(server: ServerSettings, provided: str | None) -> bool:
    """:func:`key_matches` on the server settings alone (for the middleware)."""
    expected = server.api_key
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


def same_origin(origin: str, host: str | None, scheme: str = "http") -> bool:
    """True when ``origin`` (``http://127.0.0.1:8000``) names the scheme and host the request
    was sent to (its ``Host`` header): a page served by this server itself, such as ``/docs``."""
    if host is None:
        return False
    parts = urlsplit(origin)
    return parts.scheme.lower() == _HTTP_SCHEME.get(scheme, scheme) and parts.netloc.lower() == host.lower()


_HTTP_SCHEME = {"ws": "http", "wss": "https"}
_LISTEN_EVERYWHERE = frozenset({"", "0.0.0.0", "::", "[::]"})


def host_name(header: str) -> str:
    """The name part of a ``Host`` header, lower case, without the port or a trailing dot:
    ``Example.com.:80`` -> ``example.com``, ``[::1]:8000`` -> ``[::1]``."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    elif text.count(":") > 1:  # a bare IPv6 address
        text = f"[{text}]"
    return text.rstrip(".")


def allowed_hosts(server: ServerSettings) -> frozenset[str] | None:
    """The host names the server answers to; None for any. ``allowed_hosts`` when set (``*``:
    any); otherwise the host it listens on, and on loopback also ``localhost``, ``127.0.0.1``
    and ``[::1]``. Listening on every interface (``0.0.0.0``) without ``allowed_hosts`` answers
    to any name: the server cannot know the names it is reached by."""
    if server.allowed_hosts:
        if "*" in server.allowed_hosts:
            return None
        return frozenset(host_name(h) for h in server.allowed_hosts)
    bound = server.host.strip().lower()
    if bound in _LISTEN_EVERYWHERE:
        return None
    names = {host_name(bound)}
    if _is_loopback(bound):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return frozenset(names)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
