"""imgctx: make image collections searchable.

``from imgctx import Extractor``; heavy libraries (torch, faiss, transformers) load only when a
model or store first needs them.
"""

from imgctx._backends.base import LazyModel
from imgctx._backends.store_common import check_spaces, normalise_objects
from imgctx._duplicates import DEFAULT_THRESHOLD, KEEP_POLICIES, REMOVE_THRESHOLD
from imgctx._errors import (
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
    StoreError,
)
from imgctx._extractor import Extractor
from imgctx._filters import FILTER_NAMES, RecordFilter, make_filter
from imgctx._hookspecs import hookimpl
from imgctx._images import DecodedImage, load_image, scan_directory, sniff_format
from imgctx._logging import configure_logging
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
    SearchHit,
    SpaceSpec,
    StoredVectors,
    Tag,
)

__version__ = "0.1.0"

__all__ = [
    "PluginSettings",
    "configure_logging",
    "plugin_config",
    "DEFAULT_THRESHOLD",
    "KEEP_POLICIES",
    "PRESETS",
    "REMOVE_THRESHOLD",
    "BatchReport",
    "Captioner",
    "Comparison",
    "ConfigurationError",
    "CrossModalEmbedder",
    "DecodedImage",
    "DuplicateGroup",
    "DuplicateMatch",
    "DuplicateReport",
    "Extractor",
    "FailedFile",
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
    "Preset",
    "ProcessResult",
    "Progress",
    "RecordNotFoundError",
    "RemovalReport",
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
    "check_spaces",
    "hookimpl",
    "load_image",
    "normalise_objects",
    "scan_directory",
    "sniff_format",
    "__version__",
]
