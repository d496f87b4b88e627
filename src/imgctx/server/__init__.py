"""The imgctx REST and WebSocket service (``pip install "imgctx[server]"``).

``create_app()`` builds a FastAPI app on the public ``imgctx`` API; ``imgctx serve``,
``imgctx-server`` and ``python -m imgctx.server`` run it on uvicorn.
"""

from __future__ import annotations

from imgctx import MissingDependencyError

try:
    import fastapi  # noqa: F401
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("the imgctx server", "server") from None

from imgctx.server.app import create_app, create_app_from_env
from imgctx.server.errors import (
    AuthenticationError,
    BadRequestError,
    DecodeBusyError,
    PathNotAllowedError,
    ServiceError,
    TaskNotFoundError,
    UploadExistsError,
    UploadTooLargeError,
)
from imgctx.server.run import main, serve

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "DecodeBusyError",
    "PathNotAllowedError",
    "ServiceError",
    "TaskNotFoundError",
    "UploadExistsError",
    "UploadTooLargeError",
    "create_app",
    "create_app_from_env",
    "main",
    "serve",
]
