"""The service's own errors and the contract's error envelope.

Every failure answers ``{"success": false, "error", "message", "details": {"status_code", ...},
"timestamp"}``. Library errors map to a status code by type; an unexpected exception becomes a
500 whose message names no internals (the traceback goes to the log only).

    ImgctxError
    └── ServiceError                 a request the service refuses (carries its status code)
        ├── BadRequestError          400: malformed input the schema cannot catch
        ├── AuthenticationError      401: missing or wrong API key
        ├── PathNotAllowedError      403: a path outside the allowed roots
        ├── TaskNotFoundError        404: no background task with that id
        ├── UploadExistsError        409: the upload's file exists and overwrite is false
        ├── UploadTooLargeError      413: the upload is over max_upload_bytes
        └── DecodeBusyError          503: the decode memory budget stayed taken too long

A full disk (``disk_full``) answers 507 ``DiskFullError``, whichever error reported it.
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from typing import Any

from imgctx import (
    ConfigurationError,
    FileOutsideRootsError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImgctxError,
    InvalidImageError,
    MissingDependencyError,
    ModelLoadError,
    RecordNotFoundError,
    StoreError,
)


class ServiceError(ImgctxError):
    """A request the service refuses, with the HTTP status code to answer."""

    status_code = 400

    def __init__(self, message: str, **details: Any) -> None:
        self.message = message
        self.details = details
        super().__init__(message)


class BadRequestError(ServiceError):
    """400: the input is malformed in a way the request schema cannot express."""


class AuthenticationError(ServiceError):
    """401: the API key is missing or wrong."""

    status_code = 401


class PathNotAllowedError(ServiceError):
    """403: a path resolves (after symlinks and ``..``) outside every allowed root."""

    status_code = 403


class TaskNotFoundError(ServiceError):
    """404: no background task has this id."""

    status_code = 404


class UploadExistsError(ServiceError):
    """409: a file of the upload's name exists and ``overwrite`` is false."""

    status_code = 409


class UploadTooLargeError(ServiceError):
    """413: the upload is larger than ``max_upload_bytes``."""

    status_code = 413


class DecodeBusyError(ServiceError):
    """503: other decodes held the ``decode_memory_bytes`` budget for too long."""

    status_code = 503


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def envelope(status_code: int, error: str, message: str, **details: Any) -> dict[str, Any]:
    """The contract's error body."""
    return {
        "success": False,
        "error": error,
        "message": message,
        "details": {"status_code": status_code, **details},
        "timestamp": now_iso(),
    }


def disk_full(exc: BaseException) -> bool:
    """True for a write refused because the disk (or quota) is full: an OSError with ENOSPC or
    EDQUOT, or a store error that says so (the stores word it "disk full" or, as SQLite does,
    "database or disk is full")."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(exc)
    return isinstance(exc, StoreError) and ("disk full" in text or "database or disk is full" in text)


DISK_FULL = 507


def status_for(exc: ImgctxError) -> int:
    """The HTTP status code for a library or service error."""
    if disk_full(exc):
        return DISK_FULL
    if isinstance(exc, ServiceError):
        return exc.status_code
    if isinstance(exc, FileOutsideRootsError):
        return 403
    if isinstance(exc, (ImageNotFoundError, RecordNotFoundError)):
        return 404
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, (InvalidImageError, ImageError)):
        return 400
    if isinstance(exc, (ModelLoadError, MissingDependencyError)):
        return 503
    if isinstance(exc, ConfigurationError):
        return 400
    return 500


def error_body(exc: ImgctxError) -> tuple[int, dict[str, Any]]:
    code = status_for(exc)
    details: dict[str, Any] = dict(exc.details) if isinstance(exc, ServiceError) else {}
    if isinstance(exc, ImageError) and exc.path:
        details.setdefault("path", exc.path)
    if isinstance(exc, RecordNotFoundError):
        details.setdefault("image_id", exc.record_id)
    message = exc.message if isinstance(exc, ServiceError) else str(exc)
    name = "DiskFullError" if code == DISK_FULL else type(exc).__name__
    return code, envelope(code, name, message, **details)
