"""imgctx: make image collections searchable.

``from imgctx import Extractor``; heavy libraries (torch, faiss, transformers) load only when a
model or store first needs them. ``imgctx.connect(url)`` gives the same API against a server
(httpx is imported then).
"""

from imgctx._client import AsyncClient, Client, connect, connect_async
from imgctx._remote import RemoteTask
from imgctx.errors import (
    ConfigurationError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImgctxError,
    IncompatibleIndexError,
    InvalidImageError,
    MissingDependencyError,
    ModelLoadError,
    PluginCollisionError,
    PluginNotFoundError,
    RecordNotFoundError,
    RemoteError,
    StoreError,
)
from imgctx.extractor import Extractor
from imgctx.images import DecodedImage, load_image, scan_directory, sniff_format
from imgctx.presets import PRESETS, Preset
from imgctx.settings import ServerSettings, Settings
from imgctx.types import (
    BatchReport,
    Comparison,
    DuplicateGroup,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    ModelStatus,
    ProcessResult,
    Progress,
    RemovalReport,
    SearchHit,
    SpaceSpec,
    StoredVectors,
    Tag,
)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "AsyncClient",
    "BatchReport",
    "Client",
    "Comparison",
    "ConfigurationError",
    "DecodedImage",
    "DuplicateGroup",
    "DuplicateMatch",
    "DuplicateReport",
    "Extractor",
    "FailedFile",
    "ImageError",
    "ImageNotFoundError",
    "ImageRecord",
    "ImageTooLargeError",
    "ImgctxError",
    "IncompatibleIndexError",
    "InvalidImageError",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelStatus",
    "PluginCollisionError",
    "PluginNotFoundError",
    "Preset",
    "ProcessResult",
    "Progress",
    "RecordNotFoundError",
    "RemoteError",
    "RemoteTask",
    "RemovalReport",
    "SearchHit",
    "ServerSettings",
    "Settings",
    "SpaceSpec",
    "StoreError",
    "StoredVectors",
    "Tag",
    "__version__",
    "connect",
    "connect_async",
    "load_image",
    "scan_directory",
    "sniff_format",
]
