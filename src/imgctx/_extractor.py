"""The Extractor: one captioner, image embedder, text embedder, taggers and a store, composed."""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from PIL.Image import Image as PILImage

from imgctx._backends.store_common import check_spaces, count_objects, normalise_objects
from imgctx._components import Components, ModelManager
from imgctx._duplicates import DEFAULT_THRESHOLD, REMOVE_THRESHOLD, Duplicates
from imgctx._errors import ConfigurationError, ImageError, ImgctxError, InvalidImageError, RecordNotFoundError
from imgctx._filters import RecordFilter
from imgctx._fingerprint import trim_borders
from imgctx._fsops import delete_file as remove_file
from imgctx._ids import record_id_for
from imgctx._images import absolute, as_rgb, load_image, scan_directory
from imgctx._mixed import combine, is_image_term, parse_mixed_query
from imgctx._paths import expand
from imgctx._pipeline import Ingest, ProgressCallback
from imgctx._plugins import Registry, load_registry
from imgctx._removed import RemovedDuplicates
from imgctx._search import check_search_args, filter_of, fused_search, where_kw
from imgctx._settings import Settings
from imgctx._sync import under, vanished
from imgctx._types import (
    BatchReport,
    Comparison,
    DuplicateMatch,
    DuplicateReport,
    ImageRecord,
    ProcessResult,
    RemovalReport,
    Results,
    SearchHit,
)

#: How much each vector space counts in a text search's fused score (see ``Extractor.search``).
DEFAULT_SPACE_WEIGHTS = {"text": 1.0, "image": 1.0}


class _PresetChoice:
    """The default of ``Extractor(captioner=...)``: the preset's captioner (``None`` means none)."""

    def __repr__(self) -> str:
        return "<the preset's>"


PRESET_CAPTIONER: Any = _PresetChoice()


class Extractor:
    """Captions, object tags, embeddings, hashes and file facts for images, kept in a store,
    with text search, image search and object filters.

    Models are chosen by ``preset`` and overridden per role by name (a registered plugin) or by
    instance; ``captioner=None`` switches captions off. Nothing loads until it is needed. Use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        preset: str | None = None,
        captioner: str | Any | None = PRESET_CAPTIONER,
        image_embedder: str | Any | None = None,
        text_embedder: str | Any | None = None,
        tagger: str | Any | Sequence[str | Any] | None = None,
        annotators: Sequence[str | Any] | None = None,
        store: str | Any | None = None,
        settings: Settings | None = None,
        registry: Registry | None = None,
        space_weights: dict[str, float] | None = None,
    ) -> None:
        base = settings if settings is not None else Settings()
        self.settings = base.with_overrides(
            db_path=expand(db_path) if db_path is not None else None, preset=preset
        )
        self._registry = registry
        self._instances: dict[int, Any] = {}
        # how each role was chosen (names or objects), so that other processes can build the same;
        # a captioner left to the preset is left out (the sentinel is not the same in another process)
        self._model_choices = {"image_embedder": image_embedder, "text_embedder": text_embedder, "tagger": tagger}
        if captioner is not PRESET_CAPTIONER:
            self._model_choices["captioner"] = captioner
        p = self.registry.preset(self.settings.preset)
        if captioner is PRESET_CAPTIONER and self.settings.captioner:  # IMGCTX_CAPTIONER
            captioner = None if self.settings.captioner.lower() == "none" else self.settings.captioner
        taggers: Sequence[str | Any]
        if tagger is None:
            taggers = p.taggers
        elif isinstance(tagger, (list, tuple)):
            taggers = tagger
        else:
            taggers = [tagger]
        self.components = Components(
            captioner=self._resolve("captioner", p.captioner if captioner is PRESET_CAPTIONER else captioner),
            image_embedder=self._resolve("image_embedder", image_embedder if image_embedder is not None else p.image_embedder),
            text_embedder=self._resolve("text_embedder", text_embedder if text_embedder is not None else p.text_embedder),
            taggers=[self._resolve("tagger", t) for t in taggers],
            annotators=[self._resolve("annotator", a)
                        for a in (p.annotators if annotators is None else annotators)],
        )
        if self.components.image_embedder is None and self.components.text_embedder is None:
            raise ConfigurationError("an Extractor needs an image embedder or a text embedder")
        self.space_weights = dict(DEFAULT_SPACE_WEIGHTS if space_weights is None else space_weights)
        self.models = ModelManager(self.components, self.settings.device)
        self.store = self._resolve("store", store if store is not None else self.settings.store)
        try:
            self._check_store_models()
        except ImgctxError:
            if isinstance(store, str) or store is None:  # we opened it, so we close it
                self.store.close()
            raise
        self._removed = RemovedDuplicates.beside(self.store, self.settings.db_path, self.settings.collection_name)
        self._configured = False
        self._configure_lock = threading.Lock()
        self._closed = False

    # -- construction ---------------------------------------------------------------------

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry(extra=self.settings.load_plugins)
        return self._registry

    def _resolve(self, role: str, choice: str | Any | None) -> Any:
        if choice is None or not isinstance(choice, str):
            return choice
        info = self.registry.get(role, choice)
        if info.meta.get("shared"):
            key = id(info.factory)
            if key not in self._instances:
                self._instances[key] = info.factory(self.settings)
            return self._instances[key]
        return info.factory(self.settings)

    def _check_store_models(self) -> None:
        """Refuse at open a store built by other models (names; dims are checked on first use)."""
        recorded = getattr(self.store, "spaces", None)
        if not recorded:
            return
        where = getattr(self.store, "where", None) or self.settings.db_path  # a server store's URL
        check_spaces(recorded, self.components.spaces(), f"the store at {where}", dims=False)

    def _live(self) -> None:
        if self._closed:
            raise ImgctxError("this Extractor is closed")

    def _ready(self) -> None:
        """Configure the store, loading the embedders first (dimensions may depend on the
        weights) unless the store already records spaces made by the same models."""
        self._live()
        if self._configured:
            return
        with self._configure_lock:
            if self._configured:
                return
            recorded = getattr(self.store, "spaces", None) or {}
            wanted = self.components.spaces()
            if wanted and all(s.name in recorded and recorded[s.name].model == s.model for s in wanted):
                # built by these very models: their dimensions are known, so nothing loads
                # until a command uses a model (a text search never loads the image model)
                self.store.configure([recorded[s.name] for s in wanted])
            else:
                for model in (self.components.image_embedder, self.components.text_embedder):
                    if model is not None:
                        model.load()
                self.store.configure(self.components.spaces())
            self._configured = True

    def _ready_to_ingest(self) -> None:
        """Load every model before the first image is read, so that weights that cannot be had
        fail the run once, up front, instead of failing each file."""
        self._ready()
        for model in self.components.by_role().values():
            model.load()

    # -- ingest ----------------------------------------------------------------------------------

    def _ingest(self) -> Ingest:
        self._live()
        return Ingest(self.components, self.store, self.settings, self._ready_to_ingest, self._removed)

    def process(self, path: str | os.PathLike[str], force: bool = False) -> ProcessResult:
        """Index one image file (even one removed as a duplicate before: naming it is asking for
        it). Raises an ImageError subclass for a missing or bad file."""
        self._removed.forget([str(absolute(path))])
        report = self._ingest().run([path], force=force, raise_errors=True)
        return report.results[0]

    def process_many(self, paths: Iterable[str | os.PathLike[str]], force: bool = False,
                     progress: ProgressCallback | None = None, prune: bool = True) -> BatchReport:
        """Index many files in batches; a bad file is reported in ``failed_files``, never raised.

        A file whose bytes are those of a record whose file is gone was moved or renamed: it
        takes that record's outputs (no model run) and, with ``prune``, the old record is
        deleted. Files removed with ``remove_duplicates`` stay out (``excluded_files``) until
        they change, until ``force``, or until ``restore_duplicates``.
        """
        if isinstance(paths, (str, os.PathLike)):
            raise ConfigurationError("process_many takes a list of paths; use process() for one file")
        return self._ingest().run(list(paths), force=force, progress=progress, prune=prune)

    def process_directory(self, path: str | os.PathLike[str], recursive: bool = False,
                          force: bool = False, progress: ProgressCallback | None = None,
                          prune: bool = True) -> BatchReport:
        """Index every image file (by extension) in a directory, optionally recursively.

        With ``prune`` (the default) the index stays true to the folder: records of files in it
        that are gone are deleted (``pruned_ids``), and a moved file keeps its outputs (see
        ``process_many``).
        """
        report = self.process_many(scan_directory(path, recursive), force=force, progress=progress,
                                   prune=prune)
        if not prune:
            return report
        pruned = self.prune(path, recursive=recursive)
        return replace(report, pruned_ids=(*report.pruned_ids, *pruned))

    def prune(self, directory: str | os.PathLike[str] | None = None, recursive: bool = True) -> builtins.list[str]:
        """Delete the records of files that no longer exist: in ``directory`` (below it too with
        ``recursive``), or everywhere with None. Returns the deleted records' ids."""
        self._live()
        folder = absolute(directory) if directory is not None else None
        gone = vanished(self.store, folder, recursive)
        if gone:
            self.store.delete([r.id for r in gone])
        self._removed.forget(p for p in self._removed.paths()
                             if under(p, folder, recursive) and not os.path.exists(p))
        return [r.id for r in gone]

    def removed_duplicates(self) -> builtins.list[str]:
        """Paths of files removed from the index by ``remove_duplicates`` that indexing leaves out
        (until they change, ``force``, or ``restore_duplicates``)."""
        self._live()
        return self._removed.paths()

    def restore_duplicates(self, paths: Iterable[str | os.PathLike[str]] | None = None) -> BatchReport:
        """Undo ``remove_duplicates`` for ``paths`` (every remembered file with None): forget them
        and index those that still exist."""
        self._live()
        wanted = None if paths is None else [str(absolute(p)) for p in paths]
        forgotten = self._removed.forget(wanted)
        return self.process_many([p for p in forgotten if os.path.exists(p)])

    # -- search ----------------------------------------------------------------------------------

    def _text_query_ranges(self) -> dict[str, tuple[float, float]]:
        """Per space, the cosine range a text query's similarity is mapped from (see ``search``)."""
        embedder = self.components.image_embedder
        text_range = getattr(embedder, "text_score_range", None) if embedder is not None else None
        if text_range is not None and getattr(embedder, "cross_modal", False):
            return {"image": (float(text_range[0]), float(text_range[1]))}
        return {}

    def _text_vectors(self, text: str) -> dict[str, np.ndarray]:
        vectors: dict[str, np.ndarray] = {}
        if self.components.text_embedder is not None:
            vectors["text"] = self.components.text_embedder.embed_texts([text])[0]
        embedder = self.components.image_embedder
        if embedder is not None and getattr(embedder, "cross_modal", False):
            vectors["image"] = embedder.embed_texts([text])[0]
        return vectors

    def _fused_search(self, vectors: dict[str, np.ndarray], objects: Sequence[str] | str | None,
                      limit: int, min_score: float | None, exclude: set[str] | None = None,
                      ranges: dict[str, tuple[float, float]] | None = None,
                      where: RecordFilter | None = None, offset: int = 0) -> builtins.list[SearchHit]:
        return fused_search(self.store, self.space_weights, vectors, objects, limit, min_score, exclude,
                            ranges, where, offset)

    def search(self, text: str | os.PathLike[str] | PILImage, objects: Sequence[str] | str | None = None,
               limit: int = 10, min_score: float | None = None, offset: int = 0,
               **filters: Any) -> Results[SearchHit]:
        """Images that match a text query, best first.

        Given an image instead (a PIL image or a ``pathlib.Path``), it is an image search
        (``search_image``); a ``str`` is always text, never read as a file. Any other type is a
        TypeError.

        Each vector space the query reaches contributes a similarity in [0, 1]: ``text`` (the
        query against each image's caption + tags, via the text embedder: the cosine, clipped)
        and, with a cross-modal image embedder, ``image`` (the text-to-image cosine mapped from
        the embedder's ``text_score_range`` (low, high) linearly onto [0, 1], clipped, because
        CLIP's text-to-image cosines only span about 0.1 to 0.35). The score is their weighted
        mean (``space_weights``), in [0, 1]; ``min_score`` drops hits below it. ``objects`` keeps
        only images tagged with any of them (case-insensitive). ``offset`` skips that many of
        the best hits (the next page). Each hit's ``explain()`` says which tags and caption words
        matched.

        ``filters`` are the photo filters, by keyword: ``taken_after``, ``taken_before`` (dates,
        datetimes or ISO strings, on the camera's clock), ``camera``, ``place``,
        ``text_contains`` (case-insensitive substrings), ``has_text``, ``has_people`` (flags)
        and ``colors`` (any of them); see :class:`imgctx.RecordFilter`. An image lacking a
        field is only left out by a filter on that field. ConfigurationError for an unknown
        filter or a bad value.
        """
        if isinstance(text, (PILImage, os.PathLike)):
            return self.search_image(text, objects, limit, min_score, offset=offset, **filters)
        if not isinstance(text, str):
            raise TypeError(f"search takes a text, a path or a PIL image, not {type(text).__name__}")
        if not text.strip():
            raise ConfigurationError("the search text is empty")
        check_search_args(limit, min_score, offset)
        wanted = normalise_objects(objects)
        where = filter_of(filters)
        self._ready()
        hits = self._fused_search(self._text_vectors(text.strip()), wanted, limit, min_score,
                                  ranges=self._text_query_ranges(), where=where, offset=offset)
        return Results(replace(h, query=text.strip()) for h in hits)

    def search_mixed(self, query: str | Sequence[tuple[float, Any]], objects: Sequence[str] | str | None = None,
                     limit: int = 10, min_score: float | None = None) -> Results[SearchHit]:
        """A combined query: weighted text and image terms added and subtracted.

        ``query`` is a string such as ``'2 * "golden retriever" + pool.jpg - "people"'`` (see
        ``parse_mixed_query``) or a list of ``(weight, term)`` pairs, a term being a text, a
        path or a PIL image. In each space the query vector is the normalised weighted sum of
        the terms' vectors (a text term reaches the ``text`` space and, with a cross-modal
        embedder, ``image``; an image term reaches ``image``); hits are ranked as in ``search``.
        """
        terms = parse_mixed_query(query) if isinstance(query, str) else list(query)
        if not terms:
            raise ConfigurationError("the combined query is empty")
        check_search_args(limit, min_score)
        wanted = normalise_objects(objects)
        self._ready()
        parts: builtins.list[tuple[float, dict[str, np.ndarray]]] = []
        texts = []
        for weight, term in terms:
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise TypeError(f"a term's weight must be a number, not {type(weight).__name__}")
            if isinstance(term, str):
                if not term.strip():
                    raise ConfigurationError("a text term of the combined query is empty")
                parts.append((float(weight), self._text_vectors(term.strip())))
                texts += [term.strip()] if weight > 0 else []
            elif is_image_term(term):
                parts.append((float(weight), {"image": self._image_vector(term)}))
            else:
                raise TypeError(f"a term is a text, a path or a PIL image, not {type(term).__name__}")
        only_text = all(isinstance(t, str) for _, t in terms)
        hits = self._fused_search(combine(parts), wanted, limit, min_score,
                                  ranges=self._text_query_ranges() if only_text else None)
        return Results(replace(h, query=" ".join(texts) or None) for h in hits)

    def _image_vector(self, image: Any, what: str = "an image term") -> np.ndarray:
        """The image vector of a query picture (a path or a PIL image), seen as indexed pictures
        were: decoded and reduced alike, its uniform borders trimmed."""
        embedder = self.components.image_embedder
        if embedder is None:
            raise ConfigurationError(f"{what} needs an image embedder")
        if isinstance(image, (str, os.PathLike)):
            pil = load_image(image, self.settings.max_image_pixels, self.settings.max_file_bytes,
                             self.components.decode_side()).image
        elif isinstance(image, PILImage):
            try:
                pil = as_rgb(image, self.components.decode_side())
            except (OSError, ValueError) as exc:
                raise InvalidImageError(None, f"cannot use this PIL image: {exc}") from None
        else:
            raise ConfigurationError(f"{what} is a path or a PIL image, not {type(image).__name__}")
        return np.asarray(embedder.embed_images([trim_borders(pil)])[0], np.float32)

    def search_image(self, image: str | os.PathLike[str] | Any, objects: Sequence[str] | str | None = None,
                     limit: int = 10, min_score: float | None = None,
                     exclude_self: bool = True, offset: int = 0, **filters: Any) -> Results[SearchHit]:
        """Images similar to an image (a path or a PIL image), by image-vector cosine in [0, 1].

        With a path that is itself indexed and ``exclude_self``, that record is left out.
        ``offset`` skips that many of the best hits. ``filters`` are the photo filters of
        :meth:`search`.
        """
        where = filter_of(filters)
        if self.components.image_embedder is None:
            raise ConfigurationError("image search needs an image embedder")
        check_search_args(limit, min_score, offset)
        wanted = normalise_objects(objects)
        self._ready()
        vec = self._image_vector(image, "search_image")
        by_path = isinstance(image, (str, os.PathLike))
        exclude = {record_id_for(str(absolute(image)))} if by_path and exclude_self else set()
        return Results(self._fused_search({"image": vec}, wanted, limit, min_score, exclude, where=where,
                                          offset=offset))

    def search_similar(self, record_id: str, objects: Sequence[str] | str | None = None,
                       limit: int = 10, min_score: float | None = None, offset: int = 0,
                       **filters: Any) -> Results[SearchHit]:
        """Images similar to a stored one ("more like this"), by its stored image vector (its
        text vector without an image embedder); the record itself is left out. No file is read.
        ``filters`` are the photo filters of :meth:`search`. Raises RecordNotFoundError for an
        unknown id.
        """
        check_search_args(limit, min_score, offset)
        where = filter_of(filters)
        self._ready()
        self.get(record_id)
        space = "image" if self.components.image_embedder is not None else "text"
        vec = self.store.vectors(space, [record_id]).get(record_id)
        if vec is None:
            raise RecordNotFoundError(record_id)
        return Results(self._fused_search({space: vec}, objects, limit, min_score, {record_id}, where=where,
                                          offset=offset))

    # -- records ---------------------------------------------------------------------------------

    def get(self, record_id: str) -> ImageRecord:
        """The record with this id; RecordNotFoundError if there is none."""
        self._live()
        record = self.store.get(record_id)
        if record is None:
            raise RecordNotFoundError(record_id)
        return record

    def get_by_path(self, path: str | os.PathLike[str]) -> ImageRecord | None:
        """The record of the file at ``path`` (made absolute, links not resolved), or None when
        that path is not indexed."""
        self._live()
        return self.store.get_by_path(str(absolute(path)))

    def list(self, objects: Sequence[str] | str | None = None, limit: int = 100,
             offset: int = 0, **filters: Any) -> Results[ImageRecord]:
        """Records in insertion order, optionally only those tagged with any of ``objects`` and
        passing the photo ``filters`` of :meth:`search`."""
        self._live()
        if limit < 0 or offset < 0:
            raise ConfigurationError("limit and offset must not be negative")
        return Results(self.store.list(normalise_objects(objects), limit, offset, **where_kw(filter_of(filters))))

    def object_counts(self) -> dict[str, int]:
        """Every object tag in the store with how many records carry it, most common first
        (ties by label)."""
        self._live()
        own = getattr(self.store, "object_counts", None)  # optional for third-party stores
        counts = own() if own is not None else count_objects(self.store)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def count(self, objects: Sequence[str] | str | None = None, **filters: Any) -> int:
        """How many records there are, optionally only those tagged with any of ``objects`` and
        passing the photo ``filters`` of :meth:`search`."""
        self._live()
        return self.store.count(normalise_objects(objects), **where_kw(filter_of(filters)))

    def delete(self, record_id: str, delete_file: bool = False,
               within: Sequence[str | os.PathLike[str]] | None = None) -> ImageRecord:
        """Remove a record (and, with ``delete_file``, its file, never through a folder swapped
        for a symbolic link; with ``within``, only inside those folders); returns the removed
        record. The record stays when its file cannot be deleted."""
        record = self.get(record_id)
        if delete_file:
            try:
                remove_file(record.path, within)
            except OSError as exc:
                raise ImageError(record.path, f"cannot delete file: {exc.strerror or exc}") from None
        self.store.delete([record_id])
        return record

    # -- duplicates ------------------------------------------------------------------------------

    def _duplicates(self) -> Duplicates:
        self._live()
        return Duplicates(self.components, self.store, self.settings, self._ready)

    def find_duplicates(self, threshold: float = DEFAULT_THRESHOLD,
                        directory: str | os.PathLike[str] | None = None,
                        recursive: bool = False,
                        image: str | os.PathLike[str] | None = None) -> DuplicateReport:
        """Groups of exact and near-duplicate images, over the store or over a directory.

        Without ``directory``, every stored image is grouped. With it, the image files in that
        directory (and with ``recursive`` its subfolders) are grouped, whether indexed or not; the
        store is not changed (indexed, unchanged files reuse their stored hashes and vectors) and a
        file that cannot be read is listed in ``failed_files``. Two images are duplicates when
        their combined similarity (see docs/duplicates.md) is at least ``threshold``; groups are
        the transitive closure of that relation, each represented by its first image (store
        order, or path order in a directory). Raises ConfigurationError for a threshold outside
        [0, 1] and ImageNotFoundError for a missing directory.

        With ``image``, only that image's duplicates (against the store, or against the files
        of ``directory``): at most one group, the image first, then every image whose own
        similarity to it reaches ``threshold`` (not transitive), most similar first. An
        ImageError subclass is raised for a missing or bad ``image``.
        """
        return self._duplicates().find_duplicates(threshold, directory, recursive, image)

    def check_image(self, path: str | os.PathLike[str], threshold: float = DEFAULT_THRESHOLD,
                    limit: int = 50) -> builtins.list[DuplicateMatch]:
        """Stored images that duplicate the image at ``path``, most similar first (at most
        ``limit``). The file need not be indexed; if it is, its own record is left out (a copy
        at another path is reported). Raises an ImageError subclass for a missing or bad file.
        """
        return self._duplicates().check_image(path, threshold, limit)

    def compare(self, a: str | os.PathLike[str], b: str | os.PathLike[str],
                threshold: float = DEFAULT_THRESHOLD) -> Comparison:
        """Every metric relating two image files: hash distances, embedding cosine, combined
        similarity and the verdict at ``threshold``. Neither file needs to be indexed. Raises an
        ImageError subclass for a missing or bad file.
        """
        return self._duplicates().compare(a, b, threshold)

    def remove_duplicates(self, threshold: float = REMOVE_THRESHOLD, dry_run: bool = True,
                          keep: str = "first", delete_files: bool = False,
                          within: Sequence[str | os.PathLike[str]] | None = None) -> RemovalReport:
        """Remove all but one image of every duplicate group in the store.

        ``keep`` chooses the survivor: ``"first"`` (indexed first), ``"largest"`` (largest file)
        or ``"highest-resolution"`` (most pixels; ties go to the larger file, then the first).
        With ``dry_run`` (the default) nothing changes and the report says what would go. Else
        the other members' records are deleted, and with ``delete_files`` their files too (a
        file that cannot be deleted is listed in ``failed_files``). Only members whose own
        similarity to the kept image reaches ``threshold`` go; members linked through another
        one stay (``left_ids``). A symbolic link or another path to the kept file loses its
        record but not the file, and a file changed since it was indexed stays with its record.
        With ``within``, a file outside those folders stays with its record (``failed_files``
        says why); files are never deleted through a folder swapped for a symbolic link.
        Raises ConfigurationError for an unknown policy or a threshold outside [0, 1].

        Removed records stay removed: indexing leaves their files out while they are unchanged
        (``removed_duplicates`` lists them, ``restore_duplicates`` or ``force`` brings them back).
        """
        report = self._duplicates().remove_duplicates(threshold, dry_run, keep, delete_files, within)
        if not report.dry_run:
            kept = {rid: g.representative_id for g in report.groups for rid in g.duplicate_ids}
            deleted = set(report.files_deleted)
            self._removed.remember((path, kept.get(rid, "")) for rid, path in
                                   zip(report.removed_ids, report.removed_paths, strict=True) if path not in deleted)
        return report

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Persist and release the store. Models are dropped with the Extractor."""
        if not self._closed:
            self._closed = True
            self._removed.close()
            self.store.close()

    def __repr__(self) -> str:
        where = getattr(self.store, "where", None) or self.settings.db_path
        name = getattr(self.store, "name", type(self.store).__name__)
        if self._closed:
            return f"<Extractor {name} store at {where}, preset {self.settings.preset!r}, closed>"
        try:
            count = f"{self.store.count()} images"
        except ImgctxError:
            count = "count unavailable"
        return f"<Extractor {name} store at {where}, preset {self.settings.preset!r}, {count}>"

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
