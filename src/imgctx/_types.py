"""The library's value types: frozen dataclasses, independent of any HTTP schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

import numpy as np


@dataclass(frozen=True)
class Tag:
    """An object tag with the tagger's confidence in [0, 1].

    ``coarse`` marks a common noun derived from finer labels (a "cat" for a "tabby").
    ``confident`` False marks a candidate below the tagger's threshold: it is not one of the
    record's ``objects`` (not stored, not filterable) but its words still help text search.
    """

    label: str
    score: float
    coarse: bool = False
    confident: bool = True


@dataclass(frozen=True)
class PhotoInfo:
    """What a photo's EXIF says about it, and where it was taken.

    ``taken_at`` is the date and time the photo was taken, on the camera's clock: timezone-aware
    when the file records its UTC offset (``OffsetTimeOriginal``), naive otherwise.
    ``focal_length`` is in millimetres, ``exposure_time`` in seconds, ``altitude`` in metres
    above sea level. ``city``, ``region`` and ``country`` come from the GPS position through an
    offline reverse geocoder (the nearest place of at least 1000 inhabitants). Every field is
    None when the file does not say.
    """

    taken_at: datetime | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None

    @property
    def camera(self) -> str | None:
        """Make and model in one string ("Canon EOS 5D"), the make left out when the model
        already starts with it."""
        make, model = (self.camera_make or "").strip(), (self.camera_model or "").strip()
        if make and model.lower().startswith(make.split()[0].lower()):
            make = ""
        return " ".join(p for p in (make, model) if p) or None

    @property
    def place(self) -> str | None:
        """"City, region, country", the parts that are known."""
        parts = [p for p in (self.city, self.region, self.country) if p]
        return ", ".join(dict.fromkeys(parts)) or None


@dataclass(frozen=True)
class Annotation:
    """What one annotator found in one image; None: it has nothing to say about that field.

    ``people`` counts the people or faces seen; ``tags`` are added to the image's object tags
    (e.g. ``person``).
    """

    photo: PhotoInfo | None = None
    text: str | None = None
    colors: tuple[str, ...] | None = None
    people: int | None = None
    tags: tuple[Tag, ...] = ()


@dataclass(frozen=True)
class ImageRecord:
    """Everything imgctx knows about one image file.

    ``id`` is derived from the absolute path, so one file is one record; ``content_hash`` is the
    SHA-256 of the file's bytes and ``phash``/``dhash`` are 64-bit perceptual hashes in hex.
    ``objects`` holds the tag labels (fine labels and their coarse nouns), ``tags`` the same
    labels with scores. ``orient_hashes`` holds the hashes duplicate detection compares across
    rotations and mirrors (see docs/duplicates.md; empty for a record indexed before them).

    ``photo`` holds the EXIF facts and place (None without EXIF or without a photo-metadata
    annotator), ``text`` the text read in the image (OCR; empty when none was found),
    ``colors`` its dominant colours in plain words, most covering first, and ``people`` how
    many people or faces were seen (None when no people detector ran).
    """

    id: str
    path: str
    filename: str
    size: tuple[int, int]
    file_size: int
    format: str
    caption: str
    objects: tuple[str, ...]
    content_hash: str
    phash: str
    dhash: str
    created_at: datetime
    updated_at: datetime
    mtime_ns: int = 0
    tags: tuple[Tag, ...] = ()
    orient_hashes: str = ""
    photo: PhotoInfo | None = None
    text: str = ""
    colors: tuple[str, ...] = ()
    people: int | None = None

    def __repr__(self) -> str:
        from imgctx._notebook import record_repr

        return record_repr(self)

    def _repr_html_(self) -> str:
        from imgctx._notebook import record_card

        return record_card(self)


@dataclass(frozen=True)
class SearchHit:
    """A search result: the record, its score in [0, 1] (higher is closer) and ``1 - score``.

    ``scores`` holds the per-vector-space similarity that was fused into ``score``; ``query``
    the text query (None for an image search). ``matched_tags``, ``matched_words`` and
    ``explain()`` say why it matched.
    """

    record: ImageRecord
    score: float
    scores: dict[str, float] = field(default_factory=dict)
    query: str | None = None

    @property
    def distance(self) -> float:
        return 1.0 - self.score

    @property
    def matched_tags(self) -> tuple[str, ...]:
        """The record's objects that share a word with the text query ("cats" matches "cat",
        "tabby cat"); empty for an image search."""
        from imgctx._explain import matched_labels

        return matched_labels(self.query, self.record.objects) if self.query else ()

    @property
    def matched_words(self) -> tuple[str, ...]:
        """The caption's words that are words of the text query (function words left out)."""
        from imgctx._explain import matched_words

        return matched_words(self.query, self.record.caption) if self.query else ()

    def explain(self) -> str:
        """One line: the score, each space's part of it, the tags and caption words matched."""
        from imgctx._explain import explanation

        return explanation(self.score, self.scores, self.query, self.matched_tags, self.matched_words)

    def __repr__(self) -> str:
        from imgctx._notebook import hit_repr

        return hit_repr(self)

    def _repr_html_(self) -> str:
        from imgctx._notebook import hit_card

        return hit_card(self)


_Item = TypeVar("_Item", ImageRecord, SearchHit)


class Results(list[_Item], Generic[_Item]):
    """The list that ``search``, ``search_image`` and ``list`` return: a plain ``list`` that
    also draws itself as a grid of thumbnails in Jupyter (``_repr_html_``, no network)."""

    def _repr_html_(self) -> str:
        from imgctx._notebook import grid

        return grid(self)


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of processing one file.

    ``was_duplicate`` is True when the store already held an image with the same bytes (same
    ``content_hash``) before this call, or an earlier file of the same run had them: either this
    very file, unchanged (then ``skipped`` is True and nothing was recomputed), or a copy at
    another path, named by ``duplicate_of`` (a record for this path is stored too, reusing the
    copy's model outputs). With ``force=True`` the models run again, and ``was_duplicate`` and
    ``duplicate_of`` still say whether the bytes were already known.

    ``moved_from`` names the record of a file that was moved or renamed here: a record with the
    same bytes whose file is gone. Its outputs were carried over (no model run) and, unless
    pruning was turned off, that old record was deleted.
    """

    record: ImageRecord
    was_duplicate: bool
    skipped: bool
    processing_time: float
    duplicate_of: str | None = None
    moved_from: str | None = None


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be processed and why; the rest of the run goes on."""

    path: str
    reason: str


@dataclass(frozen=True)
class BatchReport:
    """Summary of a multi-file run (``process_many`` / ``process_directory``).

    ``processed`` counts records written by this run, ``skipped`` unchanged files that were
    already indexed, ``failed`` files that could not be used (each with its reason).
    ``pruned_ids`` are records deleted because their file is gone (moved, renamed or deleted),
    ``excluded_files`` files left out because they were removed as duplicates (see
    ``Extractor.remove_duplicates``).
    """

    total_files: int
    processed: int
    skipped: int
    failed: int
    processed_ids: tuple[str, ...]
    skipped_ids: tuple[str, ...]
    failed_files: tuple[FailedFile, ...]
    processing_time: float
    results: tuple[ProcessResult, ...] = ()
    pruned_ids: tuple[str, ...] = ()
    excluded_files: tuple[str, ...] = ()

    @property
    def moved(self) -> int:
        """Files that were moved or renamed (their outputs carried over, no model run)."""
        return sum(1 for r in self.results if r.moved_from is not None)


@dataclass(frozen=True)
class Progress:
    """Passed to a ``progress`` callback after each file of a multi-file run."""

    done: int
    total: int
    path: str
    status: str  # "processed", "skipped" or "failed"

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0


@dataclass(frozen=True)
class ModelStatus:
    """Load state of the model behind one role."""

    role: str
    name: str
    loaded: bool
    load_time: float | None
    device: str


@dataclass(frozen=True)
class SpaceSpec:
    """A named vector space: which model fills it and with how many dimensions."""

    name: str
    model: str
    dim: int


@dataclass(frozen=True)
class StoredVectors:
    """A record with its vectors, as written to a store."""

    record: ImageRecord
    vectors: dict[str, np.ndarray]


@dataclass(frozen=True)
class Comparison:
    """How alike two images are, with every metric that went into the verdict.

    ``phash_distance`` and ``dhash_distance`` are Hamming distances (0-64) between the 64-bit
    perceptual hashes; ``embedding_cosine`` is the cosine of the image vectors (None without an
    image embedder); ``exact`` is True for byte-identical files (same SHA-256). ``similarity``
    is the combined similarity in [0, 1] described in docs/duplicates.md (1.0 for exact copies);
    ``is_duplicate`` is ``similarity >= threshold``.

    ``reason`` says which evidence decided (identical bytes, upright hashes and image vectors,
    hashes of the image turned to ``orientation``, a geometric match, or a partial overlap that
    vetoes the match); ``turned_hash_distance`` is the mean pHash/dHash distance in the best
    turned orientation (None where a side has no orientation hashes); the ``geometric_*`` fields
    are the geometric check's keypoints that agree, the share of the smaller picture inside the
    other and the share of the larger one it covers (None when the check did not run).
    """

    similarity: float
    is_duplicate: bool
    threshold: float
    exact: bool
    phash_distance: int
    dhash_distance: int
    hash_similarity: float
    embedding_cosine: float | None
    embedding_similarity: float | None
    reason: str = ""
    orientation: str = "upright"
    turned_hash_distance: float | None = None
    geometric_inliers: int | None = None
    geometric_contained: float | None = None
    geometric_overlap: float | None = None


@dataclass(frozen=True)
class DuplicateGroup:
    """Images that are copies of one another: the ``representative`` (the one a removal keeps)
    and the others, in the contract's ``duplicate_groups`` shape.

    ``similarity_scores[i]`` is the combined similarity of ``duplicate_ids[i]`` to the
    representative and ``exact[i]`` says whether the two files are byte-identical. ``paths``
    lists the representative's path first, then each duplicate's, in order. A member can score
    below the threshold against the representative when it joined the group through another
    member (grouping is transitive).
    """

    representative_id: str
    duplicate_ids: tuple[str, ...]
    similarity_scores: tuple[float, ...]
    paths: tuple[str, ...]
    exact: tuple[bool, ...] = ()

    @property
    def representative_path(self) -> str:
        return self.paths[0]

    @property
    def ids(self) -> tuple[str, ...]:
        """The representative's id, then the duplicates'."""
        return (self.representative_id, *self.duplicate_ids)


@dataclass(frozen=True)
class DuplicateReport:
    """The result of ``Extractor.find_duplicates``.

    ``total_images`` counts the images examined, ``total_duplicates`` the images that are a
    duplicate of a group's representative (the sum of the groups' ``duplicate_ids``),
    ``failed_files`` the files of a directory that could not be read (the rest are still
    grouped), ``check_time`` the seconds it took.
    """

    groups: tuple[DuplicateGroup, ...]
    total_images: int
    total_duplicates: int
    threshold: float
    check_time: float
    failed_files: tuple[FailedFile, ...] = ()


@dataclass(frozen=True)
class DuplicateMatch:
    """A stored image that duplicates the image given to ``Extractor.check_image``."""

    record: ImageRecord
    comparison: Comparison

    @property
    def similarity(self) -> float:
        return self.comparison.similarity


@dataclass(frozen=True)
class RemovalReport:
    """The result of ``Extractor.remove_duplicates``.

    With ``dry_run`` True nothing changed: ``removed_ids``/``removed_paths`` are what a real run
    would remove and ``files_deleted`` is empty. Otherwise ``removed_ids`` left the store, and
    ``files_deleted`` lists the files deleted from disk (only with ``delete_files``);
    ``failed_files`` are files that were not deleted, with the reason: a file that could not be
    deleted, a symbolic link or the kept file itself under another path (their records are
    removed anyway), or a file changed since it was indexed (left in place with its record).
    ``left_ids`` are group members that stay: linked to the group only through another member
    (similarity to the kept image below the threshold), or left because a file changed.
    """

    groups: tuple[DuplicateGroup, ...]
    kept_ids: tuple[str, ...]
    removed_ids: tuple[str, ...]
    removed_paths: tuple[str, ...]
    dry_run: bool
    keep: str
    threshold: float
    files_deleted: tuple[str, ...] = ()
    failed_files: tuple[FailedFile, ...] = ()
    left_ids: tuple[str, ...] = ()
