"""imgctx: make image collections searchable.

``from imgctx import Extractor``; heavy libraries (torch, faiss, transformers) load only when a
model or store first needs them. ``imgctx.connect(url)`` gives the same API against a server
(httpx is imported then).
"""

from imgctx._backends.base import LazyModel
from imgctx._backends.store_common import check_spaces, normalise_objects
from imgctx._client import AsyncClient, Client, connect, connect_async
from imgctx._duplicates import DEFAULT_THRESHOLD, KEEP_POLICIES, REMOVE_THRESHOLD
from imgctx._errors import (
    ConfigurationError,
    FileOutsideRootsError,
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
from imgctx._extractor import Extractor
from imgctx._filters import FILTER_NAMES, RecordFilter, make_filter
from imgctx._fsops import delete_file
from imgctx._hookspecs import hookimpl
from imgctx._images import DecodedImage, load_image, scan_directory, sniff_format
from imgctx._logging import configure_logging
from imgctx._mixed import parse_mixed_query
from imgctx._parquet import ParquetReport, export_parquet, import_parquet
from imgctx._presets import PRESETS, Preset
from imgctx._protocols import (
    Annotator,
    Captioner,
    CrossModalEmbedder,
    ImageEmbedder,
    Tagger,
    TextEmbedder,
    VectorStore,
)
from imgctx._ray_ingest import index_on_ray
from imgctx._remote import RemoteTask
from imgctx._settings import PluginSettings, ServerSettings, Settings, plugin_config
from imgctx._types import (
    Annotation,
    BatchReport,
    Comparison,
    DuplicateGroup,
    DuplicateMatch,
    DuplicateReport,
    FailedFile,
    ImageRecord,
    ModelStatus,
    PhotoInfo,
    ProcessResult,
    Progress,
    RemovalReport,
    Results,
    SearchHit,
    SpaceSpec,
    StoredVectors,
    Tag,
)
from imgctx._watch import Watcher

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLD",
    "KEEP_POLICIES",
    "PRESETS",
    "ParquetReport",
    "REMOVE_THRESHOLD",
    "AsyncClient",
    "BatchReport",
    "Captioner",
    "Client",
    "Comparison",
    "ConfigurationError",
    "CrossModalEmbedder",
    "DecodedImage",
    "DuplicateGroup",
    "DuplicateMatch",
    "DuplicateReport",
    "Extractor",
    "FailedFile",
    "FileOutsideRootsError",
    "ImageEmbedder",
    "ImageError",
    "ImageNotFoundError",
    "ImageRecord",
    "ImageTooLargeError",
    "ImgctxError",
    "IncompatibleIndexError",
    "InvalidImageError",
    "LazyModel",
    "MissingDependencyError",
    "ModelLoadError",
    "ModelStatus",
    "PluginCollisionError",
    "PluginNotFoundError",
    "PluginSettings",
    "Preset",
    "ProcessResult",
    "Progress",
    "RecordNotFoundError",
    "RemoteError",
    "RemoteTask",
    "RemovalReport",
    "Results",
    "SearchHit",
    "Annotation",
    "Annotator",
    "FILTER_NAMES",
    "PhotoInfo",
    "RecordFilter",
    "make_filter",
    "ServerSettings",
    "Settings",
    "SpaceSpec",
    "StoreError",
    "StoredVectors",
    "Tag",
    "Tagger",
    "TextEmbedder",
    "VectorStore",
    "Watcher",
    "check_spaces",
    "configure_logging",
    "connect",
    "connect_async",
    "delete_file",
    "export_parquet",
    "hookimpl",
    "import_parquet",
    "index_on_ray",
    "load_image",
    "normalise_objects",
    "parse_mixed_query",
    "plugin_config",
    "scan_directory",
    "sniff_format",
    "__version__",
]
