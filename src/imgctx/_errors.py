"""Every error imgctx raises on purpose, under one root.

    ImgctxError
    ├── ConfigurationError          bad settings, unknown preset or option
    │   ├── PluginNotFoundError     a plugin name nobody registered (lists the known ones)
    │   ├── PluginCollisionError    two plugins registered under one name
    │   └── MissingDependencyError  an optional package is not installed (names the pip command)
    ├── ModelLoadError              weights could not be loaded
    ├── ImageError                  one image could not be used (carries the path)
    │   ├── ImageNotFoundError      missing path, or a directory where a file was expected
    │   ├── InvalidImageError       empty, truncated, corrupt or not an image at all
    │   ├── ImageTooLargeError      over the pixel or file-size limit (decompression-bomb guard)
    │   └── FileOutsideRootsError   a deletion outside the allowed folders or through a link
    ├── RecordNotFoundError         no record with that id
    ├── StoreError                  the store cannot do what was asked
    │   └── IncompatibleIndexError  the store was built by models with other vector spaces
    └── RemoteError                 a server (``imgctx.connect``) refused a request with an error
                                    that has no library class, or could not be reached
"""

from __future__ import annotations

import os
from typing import Any


class ImgctxError(Exception):
    """Root of every error imgctx raises on purpose."""


class ConfigurationError(ImgctxError):
    """A setting, preset or option is not usable."""


class PluginNotFoundError(ConfigurationError):
    """No plugin is registered under the requested name for a role."""

    def __init__(self, role: str, name: str, known: list[str]) -> None:
        self.role = role
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "none"
        words = role.replace("_", " ")
        super().__init__(f"unknown {words} {name!r}; known {words}s: {listed}")


class PluginCollisionError(ConfigurationError):
    """Two plugins tried to register the same name for the same role."""

    def __init__(self, role: str, name: str) -> None:
        self.role = role
        self.name = name
        words = role.replace("_", " ")
        super().__init__(f"two plugins register the {words} name {name!r}; names must be unique")


class MissingDependencyError(ConfigurationError):
    """An optional dependency is not installed; the message names the install command.

    ``extra`` is the imgctx extra (or, for a plain dependency, the package) that provides it.
    """

    def __init__(self, what: str, extra: str, command: str | None = None) -> None:
        self.what = what
        self.extra = extra
        self.command = command or f'pip install "imgctx[{extra}]"'
        super().__init__(f"{what} needs {extra!r}: {self.command}")


class ModelLoadError(ImgctxError):
    """A model's weights could not be loaded."""


class ImageError(ImgctxError):
    """One image could not be read, decoded or accepted."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


class ImageNotFoundError(ImageError):
    """The path does not exist or is not a regular file."""


class InvalidImageError(ImageError):
    """The file is empty, truncated, corrupt or not an image."""


class ImageTooLargeError(ImageError):
    """The image has more pixels, or the file more bytes, than the configured limits."""


class FileOutsideRootsError(ImageError):
    """A file is outside the folders it may be deleted from, or a folder on its path is a
    symbolic link (a deletion never follows one)."""


class RecordNotFoundError(ImgctxError):
    """No record has the requested id."""

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id
        super().__init__(f"no image with id {record_id!r}")


class StoreError(ImgctxError):
    """The vector store failed or refused an operation."""


class IncompatibleIndexError(StoreError):
    """The store holds vectors from other models than the ones configured."""


class RemoteError(ImgctxError):
    """A server answered with an error that is not one of the library's own (``error`` holds the
    server's name for it: ``PathNotAllowedError``, ``AuthenticationError``, ``UploadExistsError``,
    ...), or it could not be reached (then ``status_code`` is None).

    Errors the library itself defines come back from a server as those classes
    (``RecordNotFoundError``, ``ImageNotFoundError``, ``ConfigurationError``, ...).
    """

    def __init__(self, message: str, status_code: int | None = None, error: str | None = None,
                 details: dict[str, Any] | None = None) -> None:
        self.message = message
        self.status_code = status_code
        self.error = error
        self.details = dict(details or {})
        super().__init__(message)
