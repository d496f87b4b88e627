"""Store URIs and moving an index from one store to another without recomputing anything.

A store URI names a store plugin and where its data lives::

    faiss:PATH                      the faiss store in folder PATH
    memory:                         a new, empty in-process store
    chroma:PATH                     Chroma embedded in folder PATH
    chroma+http://HOST:PORT         a Chroma server (chroma+https:// for TLS)
    qdrant:PATH                     Qdrant local mode in folder PATH (qdrant::memory: in memory)
    qdrant+http://HOST:PORT         a Qdrant server or cluster (qdrant+https:// for TLS)
    NAME:PATH                       any other store plugin, given PATH as its db_path

``chroma:http://...`` and ``qdrant:http://...`` mean the same as the ``+http`` forms. A
``#NAME`` suffix picks the collection (default: the ``collection_name`` setting), e.g.
``faiss:./imgctx_db#holidays``. The API key for a server comes from ``IMGCTX_STORE_API_KEY``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgctx._errors import ConfigurationError, StoreError
from imgctx._plugins import Registry, load_registry
from imgctx._settings import Settings
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors

#: Called after each batch with (records done, records in the source).
MigrationProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI: the plugin name, a folder or a server URL, and the collection."""

    store: str
    path: str | None = None
    url: str | None = None
    collection: str | None = None


def parse_store_uri(uri: str) -> StoreURI:
    """Split a store URI (see the module docstring); ConfigurationError when it is not one."""
    text, _, collection = uri.partition("#")
    head, sep, rest = text.partition(":")
    scheme, plus, transport = head.partition("+")
    if not sep or not scheme or not scheme.replace("_", "").replace("-", "").isalnum():
        raise ConfigurationError(
            f"not a store URI: {uri!r}; expected e.g. faiss:PATH, memory:, chroma:PATH, "
            "chroma+http://HOST:PORT, qdrant:PATH or qdrant+http://HOST:PORT"
        )
    coll = collection or None
    if plus:
        if transport not in ("http", "https") or not rest.startswith("//"):
            raise ConfigurationError(f"not a store URI: {uri!r}; a server is NAME+http://HOST:PORT")
        return StoreURI(scheme, url=f"{transport}:{rest}", collection=coll)
    if rest.startswith(("http://", "https://")):
        return StoreURI(scheme, url=rest, collection=coll)
    if scheme == "memory":
        return StoreURI(scheme, collection=coll)
    if not rest:
        raise ConfigurationError(f"the store URI {uri!r} names no folder: use {scheme}:PATH")
    return StoreURI(scheme, path=rest, collection=coll)


def open_store(uri: str | StoreURI, settings: Settings | None = None, registry: Registry | None = None) -> Any:
    """Open the store a URI names, through its registered plugin, with ``settings`` for the rest."""
    parsed = parse_store_uri(uri) if isinstance(uri, str) else uri
    base = settings if settings is not None else Settings()
    changes: dict[str, Any] = {"store": parsed.store}
    if parsed.path is not None:
        changes["db_path"] = Path(parsed.path)
    if parsed.collection is not None:
        changes["collection_name"] = parsed.collection
    effective = base.with_plugin_settings("store", url=parsed.url).model_copy(update=changes)
    info = (registry or load_registry()).get("store", parsed.store)
    if parsed.url is not None and parsed.store in ("faiss", "memory"):
        raise ConfigurationError(f"the {parsed.store} store has no server; use {parsed.store}:PATH")
    return info.factory(effective)


@dataclass(frozen=True)
class MigrationReport:
    """What a migration did: ``copied`` records written, ``skipped`` ones the destination already
    held with the same content, out of ``total`` in the source; ``destination_count`` after it."""

    total: int
    copied: int
    skipped: int
    destination_count: int
    seconds: float


def _spaces_of(store: Any, role: str) -> list[SpaceSpec]:
    spaces = getattr(store, "spaces", None)
    if spaces is None:
        raise ConfigurationError(f"the {role} store ({type(store).__name__}) does not report its vector spaces")
    return list(spaces.values())


def _same(a: ImageRecord, b: ImageRecord, va: dict[str, np.ndarray], vb: dict[str, np.ndarray]) -> bool:
    return a == b and set(va) == set(vb) and all(np.allclose(va[s], vb[s], atol=1e-6) for s in va)


def migrate(source: Any, destination: Any, batch_size: int = 256,
            progress: MigrationProgress | None = None) -> MigrationReport:
    """Copy every record and its vectors from ``source`` to ``destination`` in batches.

    Resumable: a record the destination already holds with the same fields and vectors is
    skipped, so running it again after an interruption copies only what is missing, and
    nothing twice (stores upsert by id). Each written batch is read back; at the end the
    destination must hold at least as many records as the source, or StoreError. The
    destination must be empty or hold the same vector spaces (IncompatibleIndexError
    otherwise). Don't write to the source while it runs.
    """
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be at least 1, got {batch_size}")
    started = time.perf_counter()
    spaces = _spaces_of(source, "source")
    total = source.count()
    if not spaces:
        if total:
            raise StoreError("the source store holds records but no vector spaces")
        return MigrationReport(0, 0, 0, destination.count(), time.perf_counter() - started)
    destination.configure(spaces)
    names = [s.name for s in spaces]
    copied = skipped = done = 0
    while True:
        page: Sequence[ImageRecord] = source.list(limit=batch_size, offset=done)
        if not page:
            break
        ids = [r.id for r in page]
        vectors = {s: source.vectors(s, ids) for s in names}
        held = {r.id: r for r in destination.get_many(ids)}
        held_vectors = {s: destination.vectors(s, list(held)) for s in names} if held else {}
        items = []
        for r in page:
            mine = {s: vectors[s][r.id] for s in names if r.id in vectors[s]}
            theirs = {s: held_vectors[s][r.id] for s in names if r.id in held and r.id in held_vectors[s]}
            if r.id in held and _same(r, held[r.id], mine, theirs):
                skipped += 1
            else:
                items.append(StoredVectors(r, mine))
        if items:
            destination.upsert(items)
            written = {r.id for r in destination.get_many([it.record.id for it in items])}
            lost = [it.record.id for it in items if it.record.id not in written]
            if lost:
                raise StoreError(f"the destination did not keep {len(lost)} records it was given, e.g. {lost[0]!r}")
            copied += len(items)
        done += len(page)
        if progress is not None:
            progress(done, total)
    final = destination.count()
    if done != total or final < total:
        raise StoreError(f"migration incomplete: the source has {total} records, {done} were read, "
                         f"the destination holds {final}")
    return MigrationReport(total, copied, skipped, final, time.perf_counter() - started)
