"""The roles a plugin can fill. All are batch-first: lists in, lists or float32 arrays out.

Every model-backed role also has ``name`` (stable identifier, recorded by the store), ``load()``
(idempotent, thread-safe; models load lazily on first use otherwise) and ``loaded``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

    from imgctx._filters import RecordFilter
    from imgctx._types import Annotation, ImageRecord, SpaceSpec, StoredVectors, Tag


@runtime_checkable
class Model(Protocol):
    name: str

    @property
    def loaded(self) -> bool: ...

    def load(self) -> None: ...


@runtime_checkable
class Captioner(Model, Protocol):
    def caption(
        self, images: Sequence[Image], tags: Sequence[Sequence[Tag]] | None = None
    ) -> list[str]:
        """One caption per image; ``tags`` are the taggers' output for the same images."""
        ...


@runtime_checkable
class ImageEmbedder(Model, Protocol):
    dim: int
    cross_modal: bool

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows."""
        ...


@runtime_checkable
class CrossModalEmbedder(ImageEmbedder, Protocol):
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts into the image space: (n, dim) float32, L2-normalised rows."""
        ...


@runtime_checkable
class TextEmbedder(Model, Protocol):
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised rows."""
        ...


@runtime_checkable
class Tagger(Model, Protocol):
    def tag(self, images: Sequence[Image]) -> list[list[Tag]]:
        """Object tags per image, best first, labels lower-case."""
        ...


@runtime_checkable
class Annotator(Model, Protocol):
    def annotate(self, images: Sequence[Image], paths: Sequence[str]) -> list[Annotation]:
        """One Annotation per image (photo metadata, text, colours, people); ``paths`` are the
        files the images were decoded from, for what the pixels do not hold (EXIF) or a closer
        look at full resolution."""
        ...


@runtime_checkable
class ImageAnalyzer(Protocol):
    """Optional: a backend that is both Tagger and ImageEmbedder and can do both in one pass."""

    def analyze(self, images: Sequence[Image]) -> tuple[list[list[Tag]], np.ndarray]: ...


@runtime_checkable
class VectorStore(Protocol):
    """Records, their tags and their vectors in named spaces.

    ``query`` returns cosine similarities (vectors are L2-normalised, so inner products).
    ``objects`` filters are any-of and case-insensitive. ``where`` (a RecordFilter: date taken,
    camera, place, text, people, colours) is passed only when the caller asks for one; a store
    that accepts it keeps only records that pass ``where.matches``.
    """

    def configure(self, spaces: Sequence[SpaceSpec]) -> None:
        """Record the spaces on first use; raise IncompatibleIndexError if they differ."""
        ...

    def upsert(self, items: Sequence[StoredVectors]) -> None:
        """Insert or replace records (by id) with their vectors, atomically."""
        ...

    def get(self, record_id: str) -> ImageRecord | None: ...

    def get_many(self, record_ids: Sequence[str]) -> list[ImageRecord]: ...

    def get_by_path(self, path: str) -> ImageRecord | None: ...

    def find_by_hash(self, content_hash: str) -> list[ImageRecord]: ...

    def vectors(self, space: str, record_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def delete(self, record_ids: Sequence[str]) -> int: ...

    def list(
        self, objects: Sequence[str] | None = None, limit: int = 100, offset: int = 0,
        where: RecordFilter | None = None,
    ) -> list[ImageRecord]: ...

    def query(
        self, space: str, vector: np.ndarray, k: int, objects: Sequence[str] | None = None,
        where: RecordFilter | None = None,
    ) -> builtins.list[tuple[str, float]]: ...

    def count(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None) -> int: ...

    def object_counts(self) -> dict[str, int]:
        """Every object label with the number of records tagged with it. Optional: without it,
        ``Extractor.object_counts`` pages through ``list``."""
        ...

    def close(self) -> None: ...
