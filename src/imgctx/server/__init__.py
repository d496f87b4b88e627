"""The imgctx REST and WebSocket service (``pip install "imgctx[server]"``).

``create_app()`` builds a FastAPI app on the public ``imgctx`` API; ``imgctx serve``,
``imgctx-server`` and ``python -m imgctx.server`` run it on uvicorn. The names below load on
first use, so that the ``serve`` command (:mod:`imgctx.server.commands`) can be listed without
the extra installed; using them without it raises MissingDependencyError.
"""

from __future__ import annotations

import importlib
from typing import Any

from imgctx import MissingDependencyError

_EXPORTS = {
    "create_app": "imgctx.server.app",
    "create_app_from_env": "imgctx.server.app",
    "AuthenticationError": "imgctx.server.errors",
    "BadRequestError": "imgctx.server.errors",
    "DecodeBusyError": "imgctx.server.errors",
    "PathNotAllowedError": "imgctx.server.errors",
    "ServiceError": "imgctx.server.errors",
    "TaskNotFoundError": "imgctx.server.errors",
    "UploadExistsError": "imgctx.server.errors",
    "UploadTooLargeError": "imgctx.server.errors",
    "main": "imgctx.server.commands",
    "serve": "imgctx.server.run",
}

__all__ = sorted(_EXPORTS)


def require_extra() -> None:
    """Raise MissingDependencyError naming the extra when FastAPI is not installed."""
    try:
        import fastapi  # noqa: F401
    except ImportError:
        raise MissingDependencyError("the imgctx server", "server") from None


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgctx.server' has no attribute {name!r}")
    require_extra()
    return getattr(importlib.import_module(module), name)
