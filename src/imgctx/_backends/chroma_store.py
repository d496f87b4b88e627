"""``chroma``: records and vectors in Chroma, embedded (a folder) or on a Chroma server (a URL).

Layout, for a collection ``C``:

- ``C`` holds no vectors; its metadata records the vector spaces (``imgctx_spaces``, JSON) and
  the payload layout version.
- ``C.<space>`` (``C.image``, ``C.text``), one Chroma collection per vector space, inner-product
  HNSW. Every record is in every space collection with the same metadata: the record's fields
  as scalars, its tags as JSON, and one boolean key ``obj:<label>`` per object, so an any-of
  object filter is ``{"$or": [{"obj:cat": true}, {"obj:dog": true}]}`` on Chroma's metadata index.

Records are read from the first space collection (sorted by name), which is also written last,
so a record appears only once all its vectors are stored. Chroma has no transaction across
collections: a process killed mid-batch can leave some vectors of that batch in the other space
collections; writing the batch again (what ``imgctx index`` and ``imgctx migrate`` do on a rerun)
puts everything right.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from imgctx._backends.store_common import (
    DETAIL_KEYS,
    PAYLOAD_VERSION,
    StoreServerSettings,
    check_spaces,
    checked_vectors,
    client_errors,
    count_objects,
    last_per_id,
    normalise_objects,
    payload_record,
    record_payload,
    spaces_from_json,
    spaces_to_json,
)
from imgctx._errors import ImgctxError, MissingDependencyError, StoreError
from imgctx._filters import RecordFilter
from imgctx._hookspecs import hookimpl
from imgctx._settings import Settings
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors

OBJECT_KEY = "obj:"
_PAGE = 1000


def _import_chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise MissingDependencyError("the chroma store", "chroma") from None
    return chromadb


_chroma_errors = client_errors("chroma")


def _object_filter(objects: Sequence[str] | None) -> dict[str, Any] | None:
    wanted = normalise_objects(objects)
    if wanted is None:
        return None
    clauses: list[dict[str, Any]] = [{OBJECT_KEY + o: True} for o in wanted]
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _metadata(record: ImageRecord) -> dict[str, Any]:
    meta: dict[str, Any] = record_payload(record)
    meta.pop("colors_l", None)  # filters on details scan the records (see _filtered_ids)
    for label, *_ in json.loads(meta["tags"]):
        meta[OBJECT_KEY + label] = True
    return meta


class ChromaStore:
    """Chroma collections, one per vector space; see the module docstring for the layout."""

    name = "chroma"

    def __init__(self, path: str | os.PathLike[str] | None = None, url: str | None = None,
                 collection: str = "image_contexts", api_key: str | None = None) -> None:
        if (path is None) == (url is None):
            raise StoreError("the chroma store needs either a path (embedded) or a url (server)")
        chromadb = _import_chromadb()
        from chromadb.config import Settings as ChromaSettings

        self.collection = collection
        self.where = url if url is not None else str(path)
        self._lock = threading.RLock()
        self._cols: dict[str, Any] = {}
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        try:
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise StoreError(f"not a Chroma server URL: {url!r} (expected http://host:port)")
                headers = {"x-chroma-token": api_key} if api_key else None
                self._client = chromadb.HttpClient(
                    host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 8000),
                    ssl=parts.scheme == "https", headers=headers, settings=chroma_settings,
                )
            else:
                Path(path).mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
                self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
            self._client.heartbeat()
            self._spaces = self._read_spaces()
        except ImgctxError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open the chroma store at {self.where}: {type(exc).__name__}: {exc}") from None

    # -- spaces --------------------------------------------------------------------------------

    def _read_spaces(self) -> dict[str, SpaceSpec]:
        from chromadb.errors import NotFoundError

        try:
            meta = self._client.get_collection(self.collection, embedding_function=None).metadata or {}
        except NotFoundError:
            return {}
        version = meta.get("imgctx_payload_version")
        if version is not None and int(version) != PAYLOAD_VERSION:
            raise StoreError(f"the chroma collection {self.collection!r} at {self.where} was written by "
                             f"another imgctx version (payload layout {version}, this one reads {PAYLOAD_VERSION})")
        text = meta.get("imgctx_spaces")
        if not text:
            raise StoreError(f"the chroma collection {self.collection!r} at {self.where} was not created by imgctx")
        return spaces_from_json(text)

    @property
    def spaces(self) -> dict[str, SpaceSpec]:
        return dict(self._spaces)

    @_chroma_errors
    def configure(self, spaces: Sequence[SpaceSpec]) -> None:
        with self._lock:
            self._spaces = self._read_spaces()
            check_spaces(self._spaces, spaces, f"the chroma collection {self.collection!r} at {self.where}")
            if not self._spaces:
                for s in spaces:
                    self._client.get_or_create_collection(
                        f"{self.collection}.{s.name}", configuration={"hnsw": {"space": "ip"}},
                        metadata={"imgctx_model": s.model, "imgctx_dim": s.dim}, embedding_function=None,
                    )
                self._client.get_or_create_collection(
                    self.collection, embedding_function=None,
                    metadata={"imgctx_spaces": spaces_to_json(spaces), "imgctx_payload_version": PAYLOAD_VERSION},
                )
                self._spaces = {s.name: s for s in spaces}
            self._cols = {}

    def _col(self, space: str) -> Any:
        if space not in self._spaces:
            raise StoreError(f"unknown vector space {space!r}; configured: {sorted(self._spaces)}")
        col = self._cols.get(space)
        if col is None:
            col = self._client.get_collection(f"{self.collection}.{space}", embedding_function=None)
            self._cols[space] = col
        return col

    def _primary(self) -> Any | None:
        """The collection records are read from, or None before the spaces are known."""
        if not self._spaces:
            self._spaces = self._read_spaces()
        return self._col(min(self._spaces)) if self._spaces else None

    # -- writes ----------------------------------------------------------------------------------

    @_chroma_errors
    def upsert(self, items: Sequence[StoredVectors]) -> None:
        items = last_per_id(items)
        if not items:
            return
        with self._lock:
            if not self._spaces:
                raise StoreError("configure() the chroma store before writing to it")
            vectors = [checked_vectors(it, self._spaces, "the chroma store") for it in items]
            ids = [it.record.id for it in items]
            metas = [_metadata(it.record) for it in items]
            # Chroma merges metadata on upsert: object keys a record no longer has are set to None.
            old = self._primary().get(ids=ids, include=["metadatas"])  # type: ignore[union-attr]
            old_keys = {rid: {k for k in (m or {}) if k.startswith(OBJECT_KEY) or k in DETAIL_KEYS}
                        for rid, m in zip(old["ids"], old["metadatas"], strict=True)}
            for rid, meta in zip(ids, metas, strict=True):
                for key in old_keys.get(rid, set()) - set(meta):
                    meta[key] = None
            primary = min(self._spaces)
            for space in sorted(self._spaces, key=lambda s: s == primary):  # the primary one last
                self._col(space).upsert(
                    ids=ids, embeddings=np.stack([v[space] for v in vectors]), metadatas=metas,
                )

    @_chroma_errors
    def delete(self, record_ids: Sequence[str]) -> int:
        if not record_ids:
            return 0
        with self._lock:
            primary = self._primary()
            if primary is None:
                return 0
            found = primary.get(ids=list(dict.fromkeys(record_ids)), include=[])["ids"]
            for space in sorted(self._spaces, key=lambda s: s != min(self._spaces)):  # primary first
                self._col(space).delete(ids=list(record_ids))
            return len(found)

    # -- reads -----------------------------------------------------------------------------------

    def _records(self, result: dict[str, Any]) -> builtins.list[ImageRecord]:
        return [payload_record(m) for m in result["metadatas"]]

    @_chroma_errors
    def get(self, record_id: str) -> ImageRecord | None:
        found = self.get_many([record_id])
        return found[0] if found else None

    @_chroma_errors
    def get_many(self, record_ids: Sequence[str]) -> builtins.list[ImageRecord]:
        primary = self._primary()
        if primary is None or not record_ids:
            return []
        result = primary.get(ids=list(dict.fromkeys(record_ids)), include=["metadatas"])
        by_id = {r.id: r for r in self._records(result)}
        return [by_id[i] for i in record_ids if i in by_id]

    @_chroma_errors
    def get_by_path(self, path: str) -> ImageRecord | None:
        primary = self._primary()
        if primary is None:
            return None
        found = self._records(primary.get(where={"path": path}, limit=1, include=["metadatas"]))
        return found[0] if found else None

    @_chroma_errors
    def find_by_hash(self, content_hash: str) -> builtins.list[ImageRecord]:
        primary = self._primary()
        if primary is None:
            return []
        return self._records(primary.get(where={"content_hash": content_hash}, include=["metadatas"]))

    @_chroma_errors
    def vectors(self, space: str, record_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not record_ids or not self._spaces:
            return {}
        result = self._col(space).get(ids=list(dict.fromkeys(record_ids)), include=["embeddings"])
        return {rid: np.asarray(vec, dtype=np.float32) for rid, vec in zip(result["ids"], result["embeddings"], strict=True)}

    def _scan(self, objects: Sequence[str] | None, where: RecordFilter) -> builtins.list[ImageRecord]:
        """The records tagged with any of ``objects`` that pass ``where``, in store order: a scan
        of their metadata (Chroma has no substring match on metadata), a page at a time."""
        primary = self._primary()
        out: builtins.list[ImageRecord] = []
        offset = 0
        while primary is not None:
            page = self._records(primary.get(where=_object_filter(objects), limit=_PAGE, offset=offset,
                                              include=["metadatas"]))
            out += [r for r in page if where.matches(r)]
            offset += len(page)
            if len(page) < _PAGE:
                break
        return out

    @_chroma_errors
    def list(self, objects: Sequence[str] | None = None, limit: int = 100, offset: int = 0,
             where: RecordFilter | None = None) -> builtins.list[ImageRecord]:
        primary = self._primary()
        if primary is None or limit <= 0:
            return []
        if where is not None:
            return self._scan(objects, where)[max(0, offset): max(0, offset) + limit]
        result = primary.get(where=_object_filter(objects), limit=limit, offset=max(0, offset), include=["metadatas"])
        return self._records(result)

    @_chroma_errors
    def count(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None) -> int:
        primary = self._primary()
        if primary is None:
            return 0
        if where is not None:
            return len(self._scan(objects, where))
        by_objects = _object_filter(objects)
        if by_objects is None:
            return int(primary.count())
        total, offset = 0, 0
        while True:  # Chroma counts only whole collections: page through the matching ids
            page = primary.get(where=by_objects, limit=_PAGE * 10, offset=offset, include=[])["ids"]
            total += len(page)
            offset += len(page)
            if len(page) < _PAGE * 10:
                return total

    @_chroma_errors
    def object_counts(self) -> dict[str, int]:
        return count_objects(self)

    @_chroma_errors
    def query(
        self, space: str, vector: np.ndarray, k: int, objects: Sequence[str] | None = None,
        where: RecordFilter | None = None,
    ) -> builtins.list[tuple[str, float]]:
        if not self._spaces:
            self._spaces = self._read_spaces()
        col = self._col(space)
        if k <= 0:
            return []
        k = min(k, int(col.count()))
        chroma_where = _object_filter(objects)
        if where is not None:
            allowed = [r.id for r in self._scan(objects, where)]
            k, chroma_where = min(k, len(allowed)), {"id": {"$in": allowed}}
        if k <= 0:
            return []
        result = col.query(
            query_embeddings=np.asarray(vector, np.float32).reshape(1, -1), n_results=k,
            where=chroma_where, include=["distances"],
        )
        # Chroma's "ip" distance is 1 - inner product.
        return [(rid, 1.0 - float(d)) for rid, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    def close(self) -> None:
        with self._lock:
            client, self._client = getattr(self, "_client", None), None
            self._cols = {}
            if client is None:
                return
            server = getattr(client, "_server", None)
            client.close()
            # chromadb's HTTP client never closes its connection pool; once the last client of
            # that server has gone (the shared system was released), close it here.
            from chromadb.api.shared_system_client import SharedSystemClient

            session = getattr(server, "_session", None)
            if session is not None and getattr(client, "_identifier", None) not in SharedSystemClient._identifier_to_system:
                session.close()


def chroma_factory(settings: Settings) -> ChromaStore:
    """``IMGCTX_STORE_URL`` set: a Chroma server; otherwise embedded in ``db_path``."""
    own = settings.plugin(StoreServerSettings)
    where: dict[str, Any] = {"url": own.url} if own.url else {"path": settings.db_path}
    return ChromaStore(collection=settings.collection_name, api_key=own.key(), **where)


@hookimpl
def register_stores(register: Any) -> None:
    register("chroma", chroma_factory, settings=StoreServerSettings)
