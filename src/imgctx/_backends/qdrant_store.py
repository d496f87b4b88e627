"""``qdrant``: records and vectors in Qdrant, on a server or cluster (a URL) or in its embedded
local mode (a folder, or ``:memory:``) for development and tests.

One Qdrant collection per imgctx collection, with one **named vector** per vector space
(``image``, ``text``; dot product on L2-normalised vectors, i.e. cosine). Each point carries
the record as payload: its fields, its tags (JSON), ``objects`` (the lower-case labels, a keyword
list, so an any-of filter is one ``MatchAny`` condition) and ``seq``, an integer fixed when the
record is first written that gives ``list`` its insertion order. The point id is a UUID derived
from the record id. The vector spaces are kept in the collection's metadata.

On a server the store creates payload indexes on ``id``, ``path``, ``content_hash``,
``objects`` (keyword) and ``seq`` (integer, used for ordering); local mode has no payload
indexes and scans. Writes go in batches of ``upsert_batch`` points, each acknowledged
(``wait=True``) before the next.
"""

from __future__ import annotations

import builtins
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgctx._backends.store_common import (
    DETAIL_KEYS,
    PAYLOAD_VERSION,
    StoreServerSettings,
    check_spaces,
    checked_vectors,
    client_errors,
    clock_timestamp,
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

_NAMESPACE = uuid.UUID("6f0b1a52-4c1e-5e1f-9a57-696d67637478")  # fixed: point ids must never change
_KEYWORD_FIELDS = ("id", "path", "content_hash", "objects")
_PAYLOAD = ["id", "path", "filename", "width", "height", "file_size", "format", "caption", "content_hash",
            "phash", "dhash", "mtime_ns", "created_at", "updated_at", "tags", "orient_hashes", *DETAIL_KEYS]


def _import_qdrant() -> Any:
    try:
        import qdrant_client
    except ImportError:
        raise MissingDependencyError("the qdrant store", "qdrant") from None
    return qdrant_client


def point_id(record_id: str) -> str:
    """The Qdrant point id of a record: a UUID derived from the record id."""
    return str(uuid.uuid5(_NAMESPACE, record_id))


def _explain(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return f"the server refused the API key (HTTP {status})"
    source = getattr(exc, "source", None)
    if source is not None:
        return f"{type(source).__name__}: {source}"
    return f"{type(exc).__name__}: {exc}"


_qdrant_errors = client_errors("qdrant", _explain)


class QdrantStore:
    """A Qdrant collection with one named vector per space; see the module docstring."""

    name = "qdrant"

    def __init__(self, path: str | os.PathLike[str] | None = None, url: str | None = None,
                 collection: str = "image_contexts", api_key: str | None = None,
                 timeout: int = 10, upsert_batch: int = 256, shards: int | None = None,
                 replication: int | None = None) -> None:
        if (path is None) == (url is None):
            raise StoreError("the qdrant store needs either a path (local mode) or a url (server)")
        qdrant_client = _import_qdrant()
        from qdrant_client import models

        self.models = models
        self.collection = collection
        self.local = url is None
        self.where = url if url is not None else str(path)
        self.upsert_batch = max(1, upsert_batch)
        self.shards, self.replication = shards, replication
        self._lock = threading.RLock()  # local mode is not thread-safe; a server client is, but cheap
        self._client: Any = None
        try:
            if url is not None:
                self._client = qdrant_client.QdrantClient(
                    url=url, api_key=api_key, timeout=timeout, check_compatibility=False,
                )
            elif str(path) == ":memory:":
                self._client = qdrant_client.QdrantClient(location=":memory:")
            else:
                Path(path).mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
                self._client = qdrant_client.QdrantClient(path=str(path))
            self._spaces = self._read_spaces()  # also proves the server answers and takes the key
        except ImgctxError:
            self._close_client()
            raise
        except Exception as exc:
            self._close_client()
            raise StoreError(f"cannot open the qdrant store at {self.where}: {_explain(exc)}") from None

    # -- spaces ----------------------------------------------------------------------------------

    def _read_spaces(self) -> dict[str, SpaceSpec]:
        if not self._client.collection_exists(self.collection):
            return {}
        info = self._client.get_collection(self.collection)
        meta = getattr(info.config, "metadata", None) or {}
        text = meta.get("imgctx_spaces")
        if not text:
            raise StoreError(f"the Qdrant collection {self.collection!r} at {self.where} was not created by imgctx")
        version = meta.get("imgctx_payload_version")
        if version is not None and int(version) != PAYLOAD_VERSION:
            raise StoreError(f"the Qdrant collection {self.collection!r} at {self.where} was written by another "
                             f"imgctx version (payload layout {version}, this one reads {PAYLOAD_VERSION})")
        return spaces_from_json(text)

    @property
    def spaces(self) -> dict[str, SpaceSpec]:
        return dict(self._spaces)

    @_qdrant_errors
    def configure(self, spaces: Sequence[SpaceSpec]) -> None:
        m = self.models
        with self._lock:
            self._spaces = self._read_spaces()
            check_spaces(self._spaces, spaces, f"the Qdrant collection {self.collection!r} at {self.where}")
            if self._spaces:
                return
            self._client.create_collection(
                self.collection,
                vectors_config={s.name: m.VectorParams(size=s.dim, distance=m.Distance.DOT) for s in spaces},
                metadata={"imgctx_spaces": spaces_to_json(spaces), "imgctx_payload_version": PAYLOAD_VERSION},
                shard_number=self.shards, replication_factor=self.replication,
            )
            if not self.local:  # local mode has no payload indexes (it warns and scans)
                for name in _KEYWORD_FIELDS:
                    self._client.create_payload_index(self.collection, name, m.PayloadSchemaType.KEYWORD)
                self._client.create_payload_index(self.collection, "seq", m.PayloadSchemaType.INTEGER)
            self._spaces = {s.name: s for s in spaces}

    def _ready(self) -> bool:
        if not self._spaces:
            self._spaces = self._read_spaces()
        return bool(self._spaces)

    # -- filters -----------------------------------------------------------------------------------

    def _filter(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None,
                **equal: str) -> Any:
        m = self.models
        must: list[Any] = [m.FieldCondition(key=k, match=m.MatchValue(value=v)) for k, v in equal.items()]
        must_not: list[Any] = []
        wanted = normalise_objects(objects)
        if wanted is not None:
            must.append(m.FieldCondition(key="objects", match=m.MatchAny(any=wanted)))
        if where is not None:
            self._where(where, must, must_not)
        return m.Filter(must=must, must_not=must_not or None) if must or must_not else None

    def _where(self, where: RecordFilter, must: list[Any], must_not: list[Any]) -> None:
        """A RecordFilter as Qdrant conditions: a range on the camera-clock timestamp, substring
        matches (MatchText, a substring match on fields without a full-text index) on the
        lower-case camera, place and text, flags and the colour list."""
        m = self.models
        if where.taken_after is not None or where.taken_before is not None:
            after = clock_timestamp(where.taken_after) if where.taken_after is not None else None
            before = clock_timestamp(where.taken_before) if where.taken_before is not None else None
            must.append(m.FieldCondition(key="taken_ts", range=m.Range(gte=after, lt=before)))
        for key, value in (("camera_l", where.camera), ("place_l", where.place), ("text_l", where.text_contains)):
            if value is not None:
                must.append(m.FieldCondition(key=key, match=m.MatchText(text=value)))
        if where.has_text is not None:
            must.append(m.FieldCondition(key="has_text", match=m.MatchValue(value=where.has_text)))
        if where.has_people is not None:
            seen = m.FieldCondition(key="people", range=m.Range(gt=0))
            (must if where.has_people else must_not).append(seen)
        if where.colors is not None:
            must.append(m.FieldCondition(key="colors_l", match=m.MatchAny(any=list(where.colors))))

    # -- writes ------------------------------------------------------------------------------------

    @_qdrant_errors
    def upsert(self, items: Sequence[StoredVectors]) -> None:
        items = last_per_id(items)
        if not items:
            return
        m = self.models
        with self._lock:
            if not self._ready():
                raise StoreError("configure() the qdrant store before writing to it")
            vectors = [checked_vectors(it, self._spaces, "the qdrant store") for it in items]
            for start in range(0, len(items), self.upsert_batch):
                chunk = items[start: start + self.upsert_batch]
                ids = [point_id(it.record.id) for it in chunk]
                known = self._client.retrieve(self.collection, ids, with_payload=["seq"], with_vectors=False)
                seq = {str(p.id): int(p.payload["seq"]) for p in known if p.payload and "seq" in p.payload}
                base = time.time_ns()
                points = []
                for k, (pid, item) in enumerate(zip(ids, chunk, strict=True)):
                    payload = record_payload(item.record)
                    payload["objects"] = [label for label, *_ in json.loads(payload["tags"])]
                    payload["seq"] = seq.get(pid, base + k)
                    vec = vectors[start + k]
                    points.append(m.PointStruct(id=pid, payload=payload,
                                                vector={s: vec[s].tolist() for s in self._spaces}))
                self._client.upsert(self.collection, points=points, wait=True)

    @_qdrant_errors
    def delete(self, record_ids: Sequence[str]) -> int:
        if not record_ids:
            return 0
        with self._lock:
            if not self._ready():
                return 0
            ids = list(dict.fromkeys(point_id(r) for r in record_ids))
            found = self._client.retrieve(self.collection, ids, with_payload=False, with_vectors=False)
            if found:
                self._client.delete(self.collection, points_selector=self.models.PointIdsList(
                    points=[p.id for p in found]), wait=True)
            return len(found)

    # -- reads -------------------------------------------------------------------------------------

    @_qdrant_errors
    def get(self, record_id: str) -> ImageRecord | None:
        found = self.get_many([record_id])
        return found[0] if found else None

    @_qdrant_errors
    def get_many(self, record_ids: Sequence[str]) -> builtins.list[ImageRecord]:
        if not record_ids:
            return []
        with self._lock:
            if not self._ready():
                return []
            points = self._client.retrieve(self.collection, [point_id(r) for r in dict.fromkeys(record_ids)],
                                           with_payload=_PAYLOAD, with_vectors=False)
        by_id = {r.id: r for r in (payload_record(p.payload) for p in points)}
        return [by_id[i] for i in record_ids if i in by_id]

    def _scroll(self, flt: Any, limit: int) -> builtins.list[ImageRecord]:
        with self._lock:
            if not self._ready():
                return []
            points, _ = self._client.scroll(self.collection, scroll_filter=flt, limit=limit,
                                            with_payload=_PAYLOAD + ["seq"], with_vectors=False)
        points.sort(key=lambda p: p.payload["seq"])
        return [payload_record(p.payload) for p in points]

    @_qdrant_errors
    def get_by_path(self, path: str) -> ImageRecord | None:
        found = self._scroll(self._filter(path=path), 1)
        return found[0] if found else None

    @_qdrant_errors
    def find_by_hash(self, content_hash: str) -> builtins.list[ImageRecord]:
        return self._scroll(self._filter(content_hash=content_hash), 10_000)

    @_qdrant_errors
    def vectors(self, space: str, record_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not record_ids:
            return {}
        with self._lock:
            if not self._ready():
                return {}
            points = self._client.retrieve(self.collection, [point_id(r) for r in dict.fromkeys(record_ids)],
                                           with_payload=["id"], with_vectors=[space])
        return {p.payload["id"]: np.asarray(p.vector[space], dtype=np.float32)
                for p in points if isinstance(p.vector, dict) and space in p.vector}

    @_qdrant_errors
    def list(self, objects: Sequence[str] | None = None, limit: int = 100, offset: int = 0,
             where: RecordFilter | None = None) -> builtins.list[ImageRecord]:
        if limit <= 0:
            return []
        with self._lock:
            if not self._ready():
                return []
            result = self._client.query_points(
                self.collection, query=self.models.OrderByQuery(order_by="seq"),
                query_filter=self._filter(objects, where), limit=limit, offset=max(0, offset),
                with_payload=_PAYLOAD, with_vectors=False,
            )
        return [payload_record(p.payload) for p in result.points]

    @_qdrant_errors
    def count(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None) -> int:
        with self._lock:
            if not self._ready():
                return 0
            flt = self._filter(objects, where)
            return int(self._client.count(self.collection, count_filter=flt, exact=True).count)

    @_qdrant_errors
    def object_counts(self) -> dict[str, int]:
        return count_objects(self)

    @_qdrant_errors
    def query(
        self, space: str, vector: np.ndarray, k: int, objects: Sequence[str] | None = None,
        where: RecordFilter | None = None,
    ) -> builtins.list[tuple[str, float]]:
        with self._lock:
            if not self._ready() or space not in self._spaces:
                raise StoreError(f"unknown vector space {space!r}; configured: {sorted(self._spaces)}")
            if k <= 0:
                return []
            result = self._client.query_points(
                self.collection, query=np.asarray(vector, np.float32).reshape(-1).tolist(), using=space,
                query_filter=self._filter(objects, where), limit=k, with_payload=["id"], with_vectors=False,
            )
        return [(p.payload["id"], float(p.score)) for p in result.points]

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a client that never connected may fail; nothing to release
                pass

    def close(self) -> None:
        with self._lock:
            self._close_client()


def qdrant_factory(settings: Settings) -> QdrantStore:
    """``IMGCTX_STORE_URL`` set: a Qdrant server or cluster; otherwise local mode in ``db_path``."""
    own = settings.plugin(StoreServerSettings)
    where: dict[str, Any] = {"url": own.url} if own.url else {"path": settings.db_path}
    return QdrantStore(collection=settings.collection_name, api_key=own.key(), shards=own.shards,
                       replication=own.replication, **where)


@hookimpl
def register_stores(register: Any) -> None:
    register("qdrant", qdrant_factory, settings=StoreServerSettings)
