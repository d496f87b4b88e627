"""Indexing on a Ray cluster (the ``ray`` extra): the same records, ids and guarantees as the
single-process pipeline, with the models spread over an actor pool.

The driver (this process) lists the files and skips the unchanged ones by asking the store,
exactly as :class:`imgctx._pipeline.Ingest` does. Ray Data then reads and decodes the others in
tasks (:func:`imgctx._probe.probe_file`, the same call the local path makes), runs the models in
an actor pool (``ActorPoolStrategy``; one GPU per actor where the cluster has GPUs) with
:func:`imgctx._pipeline.run_models`, and streams the results back to the driver, which is the one
writer: it builds the records with the local path's code and commits them to the store in
batches of ``batch_size``. Every file must be readable at the same path on every node (a shared
filesystem).

Crash safety is the local path's: a committed batch is in the store, so a driver killed at any
moment loses at most the batches in flight, and the rerun skips what was committed (ids come
from paths, so nothing is stored twice). A worker node lost mid-run costs Ray a retry of its
tasks and a restart of its actors elsewhere; if the cluster cannot finish, the rerun does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgctx._components import Components
from imgctx._details import annotation_from_json, annotation_to_json
from imgctx._errors import ConfigurationError, ImageError, ImgctxError, MissingDependencyError
from imgctx._images import DecodedImage
from imgctx._pipeline import Ingest, ModelOutput, run_models
from imgctx._probe import ProbedFile, probe_file
from imgctx._settings import Settings
from imgctx._types import BatchReport, Tag

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from imgctx._extractor import Extractor
    from imgctx._pipeline import ProgressCallback
    from imgctx._protocols import VectorStore

log = logging.getLogger(__name__)

#: Actors in the pool when the caller does not say.
DEFAULT_ACTORS = 2
#: Images per model call in an actor when the caller does not say.
DEFAULT_ACTOR_BATCH = 16
_FILES_PER_READ_TASK = 64
_FACTS = ("path", "error", "format", "width", "height", "file_size", "mtime_ns", "content_hash",
          "phash", "dhash", "orient_hashes")
#: The decoded picture the models see (borders trimmed) and, when borders were trimmed, the whole one.
_PICTURE = ("pixels", "pixel_width", "pixel_height")
_WHOLE = ("whole_pixels", "whole_width", "whole_height")


def require_ray() -> Any:
    """The ``ray`` module, or MissingDependencyError naming the install command."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data ships in ray[data]
    except ImportError:
        raise MissingDependencyError('indexing on a Ray cluster needs Ray Data: pip install "imgctx[ray]"') from None
    return ray


# -- on the workers -------------------------------------------------------------------------------


def _error_text(exc: Exception) -> str:
    if isinstance(exc, ImageError):
        return exc.reason
    if isinstance(exc, ImgctxError):
        return str(exc)
    return f"unexpected error: {type(exc).__name__}: {exc}"


def decode_files(batch: dict[str, np.ndarray], settings: Settings, decode_side: int) -> dict[str, np.ndarray]:
    """A Ray Data task: read, decode and hash files (``probe_file``); a file that cannot be used
    becomes a row with its ``error`` and no pixels."""
    rows: dict[str, list[Any]] = {k: [] for k in (*_FACTS, *_PICTURE, *_WHOLE)}

    def picture(columns: tuple[str, str, str], img: Any) -> None:
        rgb = None if img is None else img if img.mode == "RGB" else img.convert("RGB")
        rows[columns[0]].append(b"" if rgb is None else rgb.tobytes())
        rows[columns[1]].append(0 if rgb is None else rgb.width)
        rows[columns[2]].append(0 if rgb is None else rgb.height)

    for path in batch["path"]:
        path = str(path)
        try:
            probed = probe_file(path, settings, decode_side)
        except Exception as exc:  # one bad file never stops the run
            for k, v in zip(_FACTS, (path, _error_text(exc), "", 0, 0, 0, 0, "", "", "", ""), strict=True):
                rows[k].append(v)
            picture(_PICTURE, None)
            picture(_WHOLE, None)
            continue
        img = probed.image
        facts = (img.path, "", img.format, img.size[0], img.size[1], img.file_size, img.mtime_ns,
                 img.content_hash, probed.phash, probed.dhash, probed.orient_hashes)
        for k, v in zip(_FACTS, facts, strict=True):
            rows[k].append(v)
        picture(_PICTURE, img.image)
        picture(_WHOLE, probed.whole)  # the untrimmed picture the annotators see (none: nothing trimmed)
    return {k: np.array(v, dtype=object if k in (_PICTURE[0], _WHOLE[0]) else None) for k, v in rows.items()}


def _image_at(batch: dict[str, np.ndarray], columns: tuple[str, str, str], i: int) -> Any:
    from PIL import Image

    if not batch[columns[0]][i]:
        return None
    return Image.frombytes("RGB", (int(batch[columns[1]][i]), int(batch[columns[2]][i])), batch[columns[0]][i])


def _output_columns(outputs: Sequence[ModelOutput | str], spaces: Sequence[str]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {"model_error": [], "caption": [], "tags": [], "found": []}
    cols.update({f"vec_{s}": [] for s in spaces})
    for out in outputs:
        if isinstance(out, str):
            cols["model_error"].append(out)
            cols["caption"].append("")
            cols["tags"].append("[]")
            cols["found"].append("")
            for s in spaces:
                cols[f"vec_{s}"].append(b"")
            continue
        cols["model_error"].append("")
        cols["caption"].append(out.caption)
        cols["tags"].append(json.dumps([[t.label, t.score, t.coarse, t.confident] for t in out.tags]))
        cols["found"].append(annotation_to_json(out.found))  # photo facts, text, colours, people
        for s in spaces:
            cols[f"vec_{s}"].append(np.asarray(out.vectors[s], dtype=np.float32).tobytes())
    return cols


class ModelActor:
    """A Ray Data actor: the Extractor's models, loaded once, run on batches of decoded images."""

    def __init__(self, settings: Settings, choices: dict[str, Any], spaces: Sequence[str]) -> None:
        from imgctx._extractor import Extractor  # the actor builds the models the driver named

        self.extractor = Extractor(settings=settings.with_overrides(store="memory"), **choices)
        self.extractor._ready_to_ingest()
        self.spaces = list(spaces)

    def _run(self, images: list[Any], paths: list[str], whole: list[Any]) -> list[ModelOutput | str]:
        try:
            return list(run_models(self.extractor.components, images, paths, whole))
        except Exception as exc:
            if len(images) == 1:
                return [f"processing failed: {type(exc).__name__}: {exc}"]
            return [out for img, p, w in zip(images, paths, whole, strict=True) for out in self._run([img], [p], [w])]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        images = [_image_at(batch, _PICTURE, i) for i in ok]
        wholes = [_image_at(batch, _WHOLE, i) for i in ok]
        whole = [img if w is None else w for img, w in zip(images, wholes, strict=True)]
        results = self._run(images, [str(batch["path"][i]) for i in ok], whole) if images else []
        outputs: list[ModelOutput | str] = ["not decoded"] * len(batch["error"])  # rows with an error
        for i, out in zip(ok, results, strict=True):
            outputs[i] = out
        cols = _output_columns(outputs, self.spaces)
        out_batch = {k: batch[k] for k in _FACTS}
        out_batch.update({k: np.array(v, dtype=object if k.startswith("vec_") else None) for k, v in cols.items()})
        return out_batch


# -- on the driver --------------------------------------------------------------------------------


def _quiet_ray_data_poller() -> None:
    """Ray Data starts a thread in this process that polls cluster metrics every 10 s for as long
    as the process lives; once the cluster is gone each poll fails and is logged at DEBUG with its
    traceback, and on Python 3.11 formatting a traceback calls ``ast.parse``. CPython 3.11 keeps
    the AST converter's recursion depth in state that all threads share (python/cpython#106905),
    so those calls make ``ast.parse`` elsewhere in the process (pytest, the ONNX exporter) fail
    now and then with "AST constructor recursion depth mismatch". Ray Data's usage metrics are
    logged at INFO and above only (their DEBUG lines carry nothing but those failed queries)."""
    logging.getLogger("ray.data._internal.usage").setLevel(logging.INFO)


def _cluster_gpus(ray: Any) -> float:
    return float(ray.cluster_resources().get("GPU", 0))


class RayIngest(Ingest):
    """A multi-file run whose decoding and models run on a Ray cluster; this process writes."""

    def __init__(self, components: Components, store: VectorStore, settings: Settings,
                 ensure_ready: Callable[[], None], choices: dict[str, Any], address: str,
                 actors: int = DEFAULT_ACTORS, actor_batch_size: int = DEFAULT_ACTOR_BATCH) -> None:
        super().__init__(components, store, settings, ensure_ready)
        if actors < 1 or actor_batch_size < 1:
            raise ConfigurationError("the Ray actor count and batch size must be at least 1")
        bad = [role for role, v in choices.items() if v is not None and not isinstance(v, (str, list, tuple))]
        bad += [role for role, v in choices.items() if isinstance(v, (list, tuple)) and not all(isinstance(x, str) for x in v)]
        if bad:
            raise ConfigurationError(f"indexing on Ray builds the models on each node, so they must be chosen "
                                     f"by name (a preset or plugin names), not passed as objects: {', '.join(bad)}")
        self.choices = choices
        self.address = address
        self.actors = actors
        self.actor_batch_size = actor_batch_size
        self._outputs: dict[str, ModelOutput] = {}

    def _dataset(self, ray: Any, paths: Sequence[Path]) -> Any:
        from ray.data import ActorPoolStrategy

        gpus = _cluster_gpus(ray)
        settings = self.settings
        if gpus >= 1 and settings.device in ("auto", "cuda"):
            settings = settings.with_overrides(device="cuda")
        spaces = [s.name for s in self.components.spaces()]
        items = [{"path": str(p)} for p in paths]
        # results come back a block at a time: small blocks (two actor batches) keep the writer
        # and the progress bar streaming, and give every actor work
        per_block = min(_FILES_PER_READ_TASK, 2 * self.actor_batch_size)
        blocks = max(1, min(len(items), max(2 * self.actors, -(-len(items) // per_block))))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(decode_files, batch_size=_FILES_PER_READ_TASK, batch_format="numpy",
                            fn_kwargs={"settings": settings, "decode_side": self.decode_side})
        actors = self.actors
        if gpus >= 1 and actors > int(gpus):
            log.warning("%d actors asked for, the cluster has %d GPUs: using %d actors", actors, int(gpus), int(gpus))
            actors = int(gpus)  # one GPU each; more would wait forever for a GPU
        return ds.map_batches(
            ModelActor, batch_size=self.actor_batch_size, batch_format="numpy",
            compute=ActorPoolStrategy(size=actors),
            fn_constructor_kwargs={"settings": settings, "choices": self.choices, "spaces": spaces},
            num_gpus=1 if gpus >= 1 else 0,
        )

    def _decoded(self, paths: Sequence[Path]) -> Iterator[tuple[Path, ProbedFile | Exception]]:
        if not paths:
            return
        ray = require_ray()
        _quiet_ray_data_poller()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigurationError(f"cannot join the Ray cluster at {self.address!r}: {exc}") from None
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.print_on_execution_start = False
            spaces = [s.name for s in self.components.spaces()]
            for batch in self._dataset(ray, paths).iter_batches(batch_size=self.settings.batch_size,
                                                                 batch_format="numpy"):
                yield from self._rows(batch, spaces)
        finally:
            if started_here:
                ray.shutdown()

    def _rows(self, batch: dict[str, np.ndarray], spaces: Sequence[str]) -> Iterator[tuple[Path, ProbedFile | Exception]]:
        for i, raw in enumerate(batch["path"]):
            path = Path(str(raw))
            error = str(batch["error"][i]) or str(batch["model_error"][i])
            if error:
                yield path, ImageError(path, error)
                continue
            image = DecodedImage(
                path=str(path), image=None, format=str(batch["format"][i]),  # type: ignore[arg-type]
                size=(int(batch["width"][i]), int(batch["height"][i])),
                file_size=int(batch["file_size"][i]), mtime_ns=int(batch["mtime_ns"][i]),
                content_hash=str(batch["content_hash"][i]),
            )
            tags = [Tag(str(label), float(score), bool(coarse), bool(confident))
                    for label, score, coarse, confident in json.loads(str(batch["tags"][i]))]
            vectors = {s: np.frombuffer(batch[f"vec_{s}"][i], dtype=np.float32).copy() for s in spaces}
            found = annotation_from_json(str(batch["found"][i]))
            self._outputs[str(path)] = ModelOutput(str(batch["caption"][i]), tags, vectors, found)
            yield path, ProbedFile(image, str(batch["phash"][i]), str(batch["dhash"][i]),
                                   str(batch["orient_hashes"][i]))

    def _run_models(self, files: list[ProbedFile]) -> list[ModelOutput]:
        return [self._outputs[f.image.path] for f in files]

    def _flush(self, batch: list[ProbedFile], force: bool, fail: Callable[[str, Exception], None],
               raise_errors: bool) -> list[Any]:
        try:
            return super()._flush(batch, force, fail, raise_errors)
        finally:
            for d in batch:  # the outputs of this batch are in the store now (or failed)
                self._outputs.pop(d.image.path, None)


def index_on_ray(extractor: Extractor, paths: Iterable[str | os.PathLike[str]], address: str = "auto",
                 actors: int = DEFAULT_ACTORS, actor_batch_size: int = DEFAULT_ACTOR_BATCH,
                 force: bool = False, progress: ProgressCallback | None = None) -> BatchReport:
    """Index files like ``extractor.process_many``, with the decoding and the models on a Ray
    cluster and this process writing to the extractor's store (see docs/distributed.md)."""
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        raise ConfigurationError("index_on_ray takes a list of paths (scan_directory(DIR) for a folder)")
    require_ray()
    extractor._live()
    run = RayIngest(extractor.components, extractor.store, extractor.settings, extractor._ready,
                    dict(extractor._model_choices), address, actors, actor_batch_size)
    return run.run(list(paths), force=force, progress=progress)
