"""Helpers the built-in stores share: filter normalisation, the space-compatibility check, and
records as flat payloads for the stores that keep them as metadata (chroma, qdrant)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import Field, SecretStr

from imgctx._details import photo_from_json, photo_to_json
from imgctx._errors import ImgctxError, IncompatibleIndexError, StoreError
from imgctx._filters import clock_key
from imgctx._settings import PluginSettings, plugin_config
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors, Tag

F = TypeVar("F", bound=Callable[..., Any])


class StoreServerSettings(PluginSettings):
    """Settings of the stores that can live on a server: chroma and qdrant (``IMGCTX_STORE_*``)."""

    model_config = plugin_config("store")

    url: str | None = Field(
        None, description="URL of a Chroma or Qdrant server; unset: the store is embedded in db_path.",
    )
    api_key: SecretStr | None = Field(
        None, description="API key sent to the store server (Qdrant api-key, Chroma token).",
    )
    shards: int | None = Field(
        None, ge=1, description="Qdrant: shards of a collection the store creates (server default if unset).",
    )
    replication: int | None = Field(
        None, ge=1, description="Qdrant: replication factor of a collection the store creates (server default if unset).",
    )

    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def client_errors(kind: str, explain: Callable[[Exception], str] = _describe) -> Callable[[F], F]:
    """A decorator for the methods of a store that wraps a database client: any failure of the
    client becomes one StoreError naming the store (``self.where``); imgctx's own errors pass."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except ImgctxError:
                raise
            except Exception as exc:  # clients raise their own, httpx, grpc and OS errors
                raise StoreError(f"the {kind} store at {self.where} failed: {explain(exc)}") from None

        return wrapper  # type: ignore[return-value]

    return decorate


def normalise_objects(objects: Sequence[str] | str | None) -> list[str] | None:
    """'Cat, dog' or ['Cat', ' dog'] -> ['cat', 'dog']; empty or None -> None (no filter).
    Anything else (a number, a dict, a list holding non-strings) is a TypeError that says so."""
    if objects is None:
        return None
    if isinstance(objects, str):
        objects = objects.split(",")
    elif not isinstance(objects, (list, tuple, set, frozenset)) or not all(isinstance(o, str) for o in objects):
        raise TypeError(f"objects must be a string ('cat,dog') or a list of strings (['cat', 'dog']), "
                        f"not {_describe_value(objects)}")
    cleaned = sorted({o.strip().lower() for o in objects if o and o.strip()})
    return cleaned or None


def _describe_value(value: object) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        kinds = sorted({type(v).__name__ for v in value if not isinstance(v, str)})
        return f"a {type(value).__name__} holding {', '.join(kinds)}"
    return f"{type(value).__name__} {value!r}"[:80]


#: The way out when an index's recorded model and the configured one differ because a backend
#: changed what its vectors mean, keyed by (recorded, configured) model name; backends add theirs.
RENAMED_SPACES: dict[tuple[str, str], str] = {}


def check_spaces(
    recorded: Mapping[str, SpaceSpec], wanted: Sequence[SpaceSpec], where: str, dims: bool = True
) -> None:
    """Refuse to mix vector spaces: every wanted space must match the recorded one exactly
    (model names, and with ``dims`` also dimensions)."""
    if not recorded:
        return

    def key(s: SpaceSpec) -> tuple[str, int]:
        return (s.model, s.dim if dims else 0)

    def show(s: SpaceSpec) -> str:
        return f"{s.name}={s.model}/{s.dim}d" if dims else f"{s.name}={s.model}"

    want = {s.name: s for s in wanted}
    if set(want) != set(recorded) or any(key(want[n]) != key(recorded[n]) for n in want):
        have = ", ".join(show(s) for s in recorded.values())
        asked = ", ".join(show(s) for s in wanted)
        hint = "".join(f"; {RENAMED_SPACES[recorded[n].model, want[n].model]}" for n in want
                       if n in recorded and (recorded[n].model, want[n].model) in RENAMED_SPACES)
        raise IncompatibleIndexError(
            f"{where} was built with {have}, but the configured models give {asked}; "
            f"use the preset that built it, or another db path/collection{hint}"
        )


# -- records as flat key/value payloads (the chroma and qdrant stores) -------------------------

#: Bumped when the payload layout changes; stores refuse collections written with another one.
PAYLOAD_VERSION = 1


def record_payload(record: ImageRecord) -> dict[str, Any]:
    """An ImageRecord as scalar values (tags as JSON), labels lower-cased as every store keeps them."""
    tags: list[list[Any]] = []
    seen: set[str] = set()
    for t in record.tags or tuple(Tag(o, 1.0) for o in record.objects):
        label = t.label.lower()
        if label not in seen:  # one tag per label, the first wins (as in the faiss store)
            seen.add(label)
            tags.append([label, float(t.score), bool(t.coarse)])
    return {
        "id": record.id, "path": record.path, "filename": record.filename,
        "width": int(record.size[0]), "height": int(record.size[1]), "file_size": int(record.file_size),
        "format": record.format, "caption": record.caption, "content_hash": record.content_hash,
        "phash": record.phash, "dhash": record.dhash, "mtime_ns": int(record.mtime_ns),
        "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat(),
        "tags": json.dumps(tags, ensure_ascii=False), "orient_hashes": record.orient_hashes,
        **details_payload(record),
    }


#: The payload keys of a record's details: stored values, then the lower-case copies and flags
#: that filters compare (absent keys: the record lacks that detail).
DETAIL_KEYS = ("photo", "text", "colors", "people", "taken", "taken_ts", "camera_l", "place_l",
               "text_l", "has_text", "colors_l")


def details_payload(record: ImageRecord) -> dict[str, Any]:
    """The details of a record as scalar payload values (photo and colours as JSON)."""
    out: dict[str, Any] = {"text": record.text, "text_l": record.text.lower(), "has_text": bool(record.text.strip()),
                           "colors": json.dumps(list(record.colors)), "people": -1 if record.people is None else int(record.people)}
    if record.colors:
        out["colors_l"] = [c.lower() for c in record.colors]
    photo = record.photo
    if photo is not None:
        out["photo"] = photo_to_json(photo)
        if photo.taken_at is not None:
            out["taken"] = clock_key(photo.taken_at)
            out["taken_ts"] = clock_timestamp(photo.taken_at)
        if photo.camera:
            out["camera_l"] = photo.camera.lower()
        if photo.place:
            out["place_l"] = photo.place.lower()
    return out


def clock_timestamp(value: datetime) -> float:
    """The camera-clock time as seconds since 1970 (the offset dropped), for numeric ranges."""
    from datetime import UTC

    return value.replace(tzinfo=UTC).timestamp()


def payload_record(payload: Mapping[str, Any]) -> ImageRecord:
    """The inverse of :func:`record_payload` (extra keys are ignored)."""
    tags = tuple(Tag(str(label), float(score), bool(coarse)) for label, score, coarse in json.loads(payload["tags"]))
    return ImageRecord(
        id=str(payload["id"]), path=str(payload["path"]), filename=str(payload["filename"]),
        size=(int(payload["width"]), int(payload["height"])), file_size=int(payload["file_size"]),
        format=str(payload["format"]), caption=str(payload["caption"]),
        objects=tuple(t.label for t in tags), content_hash=str(payload["content_hash"]),
        phash=str(payload["phash"]), dhash=str(payload["dhash"]),
        created_at=datetime.fromisoformat(payload["created_at"]),
        updated_at=datetime.fromisoformat(payload["updated_at"]),
        mtime_ns=int(payload["mtime_ns"]), tags=tags,
        orient_hashes=str(payload.get("orient_hashes") or ""),  # absent in payloads written before it
        photo=photo_from_json(payload.get("photo")),
        text=str(payload.get("text") or ""), colors=tuple(json.loads(payload.get("colors") or "[]")),
        people=None if int(payload.get("people", -1)) < 0 else int(payload["people"]),
    )


def add_missing_columns(conn: Any, table: str, columns: Mapping[str, str]) -> None:
    """Schema migration of an SQLite table written by an older imgctx: add each column it lacks
    (with its declaration, which must give a default for the existing rows)."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, decl in columns.items():
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")


def count_objects(store: Any, page: int = 1000) -> dict[str, int]:
    """How many records carry each object label, by paging through ``store.list`` (for stores
    that cannot aggregate their payloads themselves)."""
    counts: dict[str, int] = {}
    offset = 0
    while True:  # ends at the first short page
        records = store.list(None, page, offset)
        for record in records:
            for label in set(record.objects):
                counts[label] = counts.get(label, 0) + 1
        offset += len(records)
        if len(records) < page:
            return counts


def last_per_id(items: Sequence[StoredVectors]) -> list[StoredVectors]:
    """One item per record id, the last one winning, in first-seen order."""
    latest: dict[str, StoredVectors] = {}
    for item in items:
        latest[item.record.id] = item
    return list(latest.values())


def checked_vectors(item: StoredVectors, spaces: Mapping[str, SpaceSpec], where: str,
                    require_all: bool = True) -> dict[str, np.ndarray]:
    """The item's vectors as flat float32 arrays; StoreError for an unknown space, a wrong
    dimension, or (with ``require_all``, for stores that keep one vector per space for every
    record) a missing space."""
    out: dict[str, np.ndarray] = {}
    for space, vec in item.vectors.items():
        if space not in spaces:
            raise StoreError(f"unknown vector space {space!r}; configured: {sorted(spaces)}")
        v = np.ascontiguousarray(vec, dtype=np.float32).reshape(-1)
        if v.shape[0] != spaces[space].dim:
            raise StoreError(f"vector for space {space!r} has {v.shape[0]} dims, expected {spaces[space].dim}")
        out[space] = v
    missing = sorted(set(spaces) - set(out))
    if missing and require_all:
        raise StoreError(f"{where} needs a vector in every space; record {item.record.id!r} lacks {missing}")
    return out


def spaces_to_json(spaces: Sequence[SpaceSpec] | Mapping[str, SpaceSpec]) -> str:
    values = spaces.values() if isinstance(spaces, Mapping) else spaces
    return json.dumps({s.name: {"model": s.model, "dim": s.dim} for s in values}, sort_keys=True)


def spaces_from_json(text: str) -> dict[str, SpaceSpec]:
    return {name: SpaceSpec(name, d["model"], int(d["dim"])) for name, d in json.loads(text).items()}
