"""Embeddings for other tools: a store as Parquet shards, and Parquet shards into a store.

The layout (``OUT_DIR/part-00000.parquet``, ``part-00001.parquet``, ...) is one row per record:
its fields (``size`` as ``width`` and ``height``, ``objects`` as a list of strings, ``tags`` as a
list of ``{label, score, coarse, confident}``, the times as UTC timestamps), then one column per
vector space, ``<space>_embedding`` (``image_embedding``, ``text_embedding``: fixed-size lists of
float32, L2-normalised; null where a record has no vector in that space). Spark, Ray Data,
DuckDB, pandas and FAISS index builders (autofaiss ``--embedding_column_name image_embedding``)
read it as it is. Each shard's schema metadata ``imgctx`` holds the vector spaces (name, model,
dimensions), so an import refuses a store built by other models.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np

from imgctx._errors import ConfigurationError, MissingDependencyError, StoreError
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors, Tag

#: Records per shard when the caller does not say.
DEFAULT_SHARD_ROWS = 50_000
_META_KEY = b"imgctx"
_FORMAT_VERSION = 1

#: Called after each shard or batch with (records done, records in all).
ParquetProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ParquetReport:
    """What an export or import did: ``records`` written or read, the ``shards`` (paths), the
    vector ``spaces`` and the ``seconds`` it took."""

    records: int
    shards: tuple[str, ...]
    spaces: tuple[SpaceSpec, ...]
    seconds: float


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise MissingDependencyError('Parquet export and import need pyarrow: pip install "imgctx[ray]" '
                                     '(or pip install pyarrow)') from None
    return pyarrow


def _column(space: str) -> str:
    return f"{space}_embedding"


def _schema(pa: Any, spaces: list[SpaceSpec]) -> Any:
    tag = pa.struct([("label", pa.string()), ("score", pa.float64()), ("coarse", pa.bool_()),
                     ("confident", pa.bool_())])
    ts = pa.timestamp("us", tz="UTC")
    fields = [
        ("id", pa.string()), ("path", pa.string()), ("filename", pa.string()), ("width", pa.int32()),
        ("height", pa.int32()), ("file_size", pa.int64()), ("format", pa.string()),
        ("caption", pa.string()), ("objects", pa.list_(pa.string())), ("content_hash", pa.string()),
        ("phash", pa.string()), ("dhash", pa.string()), ("created_at", ts), ("updated_at", ts),
        ("mtime_ns", pa.int64()), ("orient_hashes", pa.string()), ("tags", pa.list_(tag)),
    ]
    fields += [(_column(s.name), pa.list_(pa.float32(), s.dim)) for s in spaces]
    meta = {"version": _FORMAT_VERSION, "spaces": [{"name": s.name, "model": s.model, "dim": s.dim} for s in spaces]}
    return pa.schema(fields, metadata={_META_KEY: json.dumps(meta).encode()})


def _spaces_of(store: Any) -> list[SpaceSpec]:
    spaces = getattr(store, "spaces", None)
    if spaces is None:
        raise ConfigurationError(f"the store ({type(store).__name__}) does not report its vector spaces")
    return list(spaces.values())


def _rows(records: list[ImageRecord], vectors: dict[str, dict[str, np.ndarray]],
          spaces: list[SpaceSpec]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        cols.setdefault(name, []).append(value)

    for r in records:
        for name in ("id", "path", "filename"):
            put(name, getattr(r, name))
        put("width", r.size[0])
        put("height", r.size[1])
        for name in ("file_size", "format", "caption"):
            put(name, getattr(r, name))
        put("objects", list(r.objects))
        for name in ("content_hash", "phash", "dhash", "created_at", "updated_at", "mtime_ns", "orient_hashes"):
            put(name, getattr(r, name))
        put("tags", [{"label": t.label, "score": t.score, "coarse": t.coarse, "confident": t.confident}
                     for t in r.tags])
        for s in spaces:
            vec = vectors[s.name].get(r.id)
            put(_column(s.name), None if vec is None else np.asarray(vec, dtype=np.float32))
    return cols


def export_parquet(store: Any, out_dir: str | os.PathLike[str], shard_rows: int = DEFAULT_SHARD_ROWS,
                   progress: ParquetProgress | None = None) -> ParquetReport:
    """Write every record of ``store`` with its vectors as Parquet shards into ``out_dir``
    (created; it must not hold shards already). Don't write to the store while it runs."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    if shard_rows < 1:
        raise ConfigurationError(f"shard_rows must be at least 1, got {shard_rows}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("part-*.parquet")):
        raise ConfigurationError(f"{out} already holds Parquet shards; export into an empty folder")
    spaces = _spaces_of(store)
    schema = _schema(pa, spaces)
    total = store.count()
    shards: list[str] = []
    done = 0
    while True:
        page = store.list(limit=shard_rows, offset=done)
        if not page:
            break
        ids = [r.id for r in page]
        vectors = {s.name: store.vectors(s.name, ids) for s in spaces}
        table = pa.Table.from_pydict(_rows(page, vectors, spaces), schema=schema)
        path = out / f"part-{len(shards):05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)  # a shard is there whole or not at all
        shards.append(str(path))
        done += len(page)
        if progress is not None:
            progress(done, total)
    return ParquetReport(done, tuple(shards), tuple(spaces), time.perf_counter() - started)


def _shard_paths(in_dir: Path) -> list[Path]:
    if in_dir.is_file():
        return [in_dir]
    if not in_dir.is_dir():
        raise ConfigurationError(f"no such folder of Parquet shards: {in_dir}")
    shards = sorted(in_dir.glob("*.parquet"))
    if not shards:
        raise ConfigurationError(f"{in_dir} holds no .parquet files")
    return shards


def _spaces_in(schema: Any, path: Path) -> list[SpaceSpec]:
    raw = (schema.metadata or {}).get(_META_KEY)
    if raw is not None:
        meta = json.loads(raw)
        return [SpaceSpec(s["name"], s["model"], int(s["dim"])) for s in meta["spaces"]]
    raise ConfigurationError(f"{path} was not written by imgctx export (no 'imgctx' schema metadata)")


def _records(table: Any, spaces: list[SpaceSpec]) -> Iterator[StoredVectors]:
    cols = table.to_pydict()
    for i in range(table.num_rows):
        created, updated = cols["created_at"][i], cols["updated_at"][i]
        record = ImageRecord(
            id=cols["id"][i], path=cols["path"][i], filename=cols["filename"][i],
            size=(cols["width"][i], cols["height"][i]), file_size=cols["file_size"][i],
            format=cols["format"][i], caption=cols["caption"][i], objects=tuple(cols["objects"][i]),
            content_hash=cols["content_hash"][i], phash=cols["phash"][i], dhash=cols["dhash"][i],
            created_at=created.astimezone(UTC), updated_at=updated.astimezone(UTC),
            mtime_ns=cols["mtime_ns"][i], orient_hashes=(cols.get("orient_hashes") or [""] * table.num_rows)[i] or "",
            tags=tuple(Tag(t["label"], t["score"], t["coarse"], t["confident"])
                       for t in cols["tags"][i]),
        )
        vectors = {s.name: np.asarray(cols[_column(s.name)][i], dtype=np.float32)
                   for s in spaces if cols[_column(s.name)][i] is not None}
        yield StoredVectors(record, vectors)


def import_parquet(in_dir: str | os.PathLike[str], store: Any, batch_size: int = 1024,
                   progress: ParquetProgress | None = None) -> ParquetReport:
    """Load Parquet shards written by :func:`export_parquet` (a folder of them, or one file)
    into ``store``, in batches. Records are upserted by id, so importing again replaces rather
    than duplicates, and an interrupted import is finished by running it again. The store must
    be empty or hold the same vector spaces (IncompatibleIndexError otherwise)."""
    _pyarrow()
    import pyarrow.parquet as pq

    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    paths = _shard_paths(Path(in_dir))
    files = [pq.ParquetFile(p) for p in paths]
    spaces = _spaces_in(files[0].schema_arrow, paths[0])
    for p, f in zip(paths[1:], files[1:], strict=True):
        if _spaces_in(f.schema_arrow, p) != spaces:
            raise ConfigurationError(f"{p} holds other vector spaces than {paths[0]}")
    total = sum(f.metadata.num_rows for f in files)
    store.configure(spaces)
    done = 0
    for f in files:
        for batch in f.iter_batches(batch_size=batch_size):
            items = list(_records(batch, spaces))
            store.upsert(items)
            done += len(items)
            if progress is not None:
                progress(done, total)
    if store.count() < total:
        raise StoreError(f"import incomplete: the shards hold {total} records, the store holds {store.count()}")
    return ParquetReport(done, tuple(str(p) for p in paths), tuple(spaces), time.perf_counter() - started)
