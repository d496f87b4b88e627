"""``faiss``: SQLite (WAL) as the source of truth, one FAISS index per vector space beside it.

Files, in the ``db_path`` folder, per collection ``C``: ``C.sqlite3`` (records, tags, vectors as
float32 blobs, metadata) and ``C.<space>.faiss`` (an accelerator). Every write transaction bumps
a ``generation`` counter in SQLite; an index file is trusted only if it was saved at the current
generation and its SHA-256 matches the one saved beside it, otherwise it is rebuilt from SQLite.
A process killed at any moment therefore leaves a store that opens and is consistent: SQLite
rolls back the unfinished transaction and the stale index is rebuilt; a damaged index file is
rebuilt too. Another process's writes are noticed the same way before each query.

Search is exact (flat inner product) up to ``IMGCTX_FAISS_EXACT_SEARCH_LIMIT`` vectors per space and
approximate (IVF, inner product) beyond it.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from imgctx._backends.faiss_index import SpaceIndex, import_faiss
from imgctx._backends.faiss_schema import COLUMNS as _COLUMNS
from imgctx._backends.faiss_schema import create_or_migrate, read_details, where_sql, write_details
from imgctx._backends.store_common import (
    check_spaces,
    checked_vectors,
    normalise_objects,
    spaces_from_json,
    spaces_to_json,
)
from imgctx._errors import StoreError
from imgctx._filters import RecordFilter
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors, Tag

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def _store_errors(method: F) -> F:
    """SQLite failures (a locked database, a full disk, a path SQLite cannot encode) become
    StoreError naming the store, never a raw sqlite3 exception."""

    @functools.wraps(method)
    def wrapper(self: FaissStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise StoreError(f"disk full: the store at {self.db_file} cannot grow ({exc})") from None
            raise StoreError(f"the store at {self.db_file} failed: {exc}") from None
        except UnicodeEncodeError:
            raise StoreError("a path or label is not valid UTF-8 and cannot be stored") from None

    return wrapper  # type: ignore[return-value]



def _sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


#: SQLite page cache of the store's connection, KiB (SQLite's default is 2,000).
SQLITE_CACHE_KIB = 65_536

#: Extra candidates an approximate search scores exactly, beyond the ``k`` asked (at least ``k``).
REFINE_EXTRA = 10


class FaissStore:
    """The default store: SQLite is the truth, FAISS the accelerator."""

    name = "faiss"

    def __init__(self, db_path: str | os.PathLike[str], collection: str = "image_contexts",
                 exact_search_limit: int = 50_000, search_threads: int = 1) -> None:
        self.faiss = import_faiss()
        self.root = Path(db_path)
        self.collection = collection
        self.exact_limit = exact_search_limit
        self.search_threads = search_threads
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.db_file = self.root / f"{collection}.sqlite3"
            self._conn = sqlite3.connect(self.db_file, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")
            # up to 64 MiB of pages: the B-tree pages above the vectors stay cached, so the
            # exact re-scoring of a large index reads about one page per candidate
            self._conn.execute(f"PRAGMA cache_size={-SQLITE_CACHE_KIB}")
            with self._write(bump=False):
                create_or_migrate(self._conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the store at {self.root}: {exc}") from None
        self._lock = threading.RLock()
        self._spaces: dict[str, SpaceSpec] = self._read_spaces()
        self._indexes: dict[str, SpaceIndex] = {}
        self._synced_generation = -1
        self._allowed: dict[tuple[Any, ...], tuple[np.ndarray, Any]] = {}  # filter -> rowids, FAISS selector

    # -- SQLite plumbing -------------------------------------------------------------------

    @contextmanager
    def _write(self, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction that (for data changes) also bumps the generation counter."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            if bump:
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk does)
                conn.execute("ROLLBACK")
            raise

    def _generation(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _read_spaces(self) -> dict[str, SpaceSpec]:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'spaces'").fetchone()
        if row is None:
            return {}
        return spaces_from_json(row[0])

    @_store_errors
    def configure(self, spaces: Sequence[SpaceSpec]) -> None:
        with self._lock:
            self._spaces = self._read_spaces()
            check_spaces(self._spaces, spaces, f"the store {self.db_file}")
            if not self._spaces:
                with self._write() as conn:
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('spaces', ?)",
                                 (spaces_to_json(spaces),))
                self._spaces = {s.name: s for s in spaces}

    @property
    def spaces(self) -> dict[str, SpaceSpec]:
        return dict(self._spaces)

    # -- FAISS sync ----------------------------------------------------------------------------

    def _index_file(self, space: str) -> Path:
        return self.root / f"{self.collection}.{space}.faiss"

    def _stamp_file(self) -> Path:
        return self.root / f"{self.collection}.faiss.json"

    def _sync(self) -> None:
        """Make the in-memory indexes match SQLite, loading saved files when they are current."""
        generation = self._generation()
        if generation == self._synced_generation and set(self._indexes) == set(self._spaces):
            return
        self._spaces = self._read_spaces()
        indexes: dict[str, SpaceIndex] = {}
        saved = self._load_saved(generation) if self._synced_generation < 0 else {}
        for name, spec in self._spaces.items():
            idx = saved.get(name) or SpaceIndex(self.faiss, spec, self.exact_limit, self.search_threads)
            if idx.index is None or idx.ntotal != self._count_vectors(name) or idx.needs_rebuild:
                ids, vecs = self._load_vectors(name)
                idx.build(ids, vecs)
            indexes[name] = idx
        self._indexes = indexes
        self._synced_generation = generation

    @contextmanager
    def _files_lock(self) -> Iterator[None]:
        """An exclusive lock across processes while index files and their stamp are written or
        read, so a stamp always describes the files beside it."""
        if fcntl is None:  # pragma: no cover - Windows: no cross-process lock
            yield
            return
        with open(self.root / f"{self.collection}.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load_saved(self, generation: int) -> dict[str, SpaceIndex]:
        """The saved indexes, if they were saved at this generation; unreadable ones are skipped."""
        out: dict[str, SpaceIndex] = {}
        with self._files_lock():
            try:
                stamp = json.loads(self._stamp_file().read_text())
            except (OSError, ValueError):
                return out
            for name, spec in self._spaces.items():
                info = stamp.get(name)
                if not info or info.get("generation") != generation:
                    continue
                idx = SpaceIndex(self.faiss, spec, self.exact_limit, self.search_threads)
                path = self._index_file(name)
                try:
                    if _sha256(path) != info.get("sha256"):
                        log.warning("%s does not match its checksum; rebuilding it from %s", path, self.db_file)
                        continue
                    idx.index = self.faiss.read_index(str(path))
                except (OSError, RuntimeError):
                    continue
                idx.approximate = bool(info.get("approximate"))
                idx.trained_on = int(info.get("trained_on", 0))
                out[name] = idx
        return out

    def _count_vectors(self, space: str) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM vectors WHERE space = ?", (space,)).fetchone()[0])

    def _load_vectors(self, space: str) -> tuple[np.ndarray, np.ndarray]:
        dim = self._spaces[space].dim
        rows = self._conn.execute("SELECT rid, vec FROM vectors WHERE space = ? ORDER BY rid", (space,)).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, np.ascontiguousarray(vecs)

    @_store_errors
    def save(self) -> None:
        """Write the FAISS indexes and the generation they reflect (atomically, via rename)."""
        with self._lock:
            if self._synced_generation < 0:
                return
            self._sync()
            stamp = {}
            suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
            with self._files_lock():
                for name, idx in self._indexes.items():
                    tmp = self._index_file(name).with_name(self._index_file(name).name + suffix)
                    self.faiss.write_index(idx.index, str(tmp))
                    checksum = _sha256(tmp)
                    os.replace(tmp, self._index_file(name))
                    stamp[name] = {
                        "generation": self._synced_generation, "approximate": idx.approximate,
                        "trained_on": idx.trained_on, "sha256": checksum,
                    }
                tmp_stamp = self._stamp_file().with_name(self._stamp_file().name + suffix)
                tmp_stamp.write_text(json.dumps(stamp))
                os.replace(tmp_stamp, self._stamp_file())

    # -- records ---------------------------------------------------------------------------------

    @_store_errors
    def upsert(self, items: Sequence[StoredVectors]) -> None:
        if not items:
            return
        with self._lock:
            self._sync()
            added: dict[str, dict[int, np.ndarray]] = {s: {} for s in self._spaces}  # last one wins
            replaced: list[int] = []
            with self._write() as conn:
                for item in items:
                    r = item.record
                    row = conn.execute("SELECT rowid FROM records WHERE id = ?", (r.id,)).fetchone()
                    values = (
                        r.path, r.filename, r.size[0], r.size[1], r.file_size, r.format, r.caption,
                        r.content_hash, r.phash, r.dhash, r.mtime_ns, r.created_at.isoformat(),
                        r.updated_at.isoformat(), r.orient_hashes,
                    )
                    if row is None:
                        # Another id at this path is replaced too (and leaves the FAISS indexes).
                        replaced += [old[0] for old in conn.execute("SELECT rowid FROM records WHERE path = ?", (r.path,))]
                        conn.execute("DELETE FROM records WHERE path = ?", (r.path,))
                        cur = conn.execute(
                            "INSERT INTO records(id, path, filename, width, height, file_size, format, "
                            "caption, content_hash, phash, dhash, mtime_ns, created_at, updated_at, orient_hashes) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (r.id, *values),
                        )
                        rid = int(cur.lastrowid)  # type: ignore[arg-type]
                    else:
                        rid = int(row[0])
                        replaced.append(rid)
                        conn.execute(
                            "UPDATE records SET path=?, filename=?, width=?, height=?, file_size=?, "
                            "format=?, caption=?, content_hash=?, phash=?, dhash=?, mtime_ns=?, "
                            "created_at=?, updated_at=?, orient_hashes=? WHERE rowid=?", (*values, rid),
                        )
                        conn.execute("DELETE FROM tags WHERE rid = ?", (rid,))
                        conn.execute("DELETE FROM vectors WHERE rid = ?", (rid,))
                    conn.executemany(
                        "INSERT OR IGNORE INTO tags(rid, label, score, coarse, pos) VALUES (?, ?, ?, ?, ?)",
                        [(rid, t.label.lower(), float(t.score), int(t.coarse), i)
                         for i, t in enumerate(r.tags or tuple(Tag(o, 1.0) for o in r.objects))],
                    )
                    write_details(conn, rid, r)
                    for space, v in checked_vectors(item, self._spaces, str(self.db_file), require_all=False).items():
                        conn.execute("INSERT INTO vectors(rid, space, vec) VALUES (?, ?, ?)", (rid, space, v.tobytes()))
                        added[space][rid] = v
            for space, idx in self._indexes.items():
                idx.remove(replaced)
                fresh = added.get(space, {})
                if fresh:
                    idx.add(list(fresh), np.stack(list(fresh.values())))
            self._synced_generation = self._expect_own_write()
            self._rebuild_if_needed()

    def _rebuild_if_needed(self) -> None:
        if any(idx.needs_rebuild for idx in self._indexes.values()):
            self._synced_generation = -2  # rebuilt from SQLite (flat <-> IVF, retrain) when next used

    def _expect_own_write(self) -> int:
        """After our commit: current generation, or -2 to force a rebuild if another writer slipped in."""
        generation = self._generation()
        return generation if generation == self._synced_generation + 1 else -2

    def _row_to_record(self, row: sqlite3.Row | tuple[Any, ...]) -> ImageRecord:
        rid = row[0]
        tag_rows = self._conn.execute(
            "SELECT label, score, coarse FROM tags WHERE rid = ? ORDER BY pos", (rid,)
        ).fetchall()
        tags = tuple(Tag(t[0], float(t[1]), bool(t[2])) for t in tag_rows)
        return ImageRecord(
            id=row[1], path=row[2], filename=row[3], size=(int(row[4]), int(row[5])),
            file_size=int(row[6]), format=row[7], caption=row[8], content_hash=row[9],
            phash=row[10], dhash=row[11], mtime_ns=int(row[12]),
            created_at=datetime.fromisoformat(row[13]), updated_at=datetime.fromisoformat(row[14]),
            objects=tuple(t.label for t in tags), tags=tags, orient_hashes=row[15],
            **read_details(self._conn, rid),
        )

    @_store_errors
    def get(self, record_id: str) -> ImageRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM records WHERE id = ?", (record_id,)).fetchone()
            return self._row_to_record(row) if row else None

    def get_many(self, record_ids: Sequence[str]) -> list[ImageRecord]:
        return [r for r in (self.get(i) for i in record_ids) if r is not None]

    @_store_errors
    def get_by_path(self, path: str) -> ImageRecord | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM records WHERE path = ?", (path,)).fetchone()
            return self._row_to_record(row) if row else None

    @_store_errors
    def find_by_hash(self, content_hash: str) -> list[ImageRecord]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM records WHERE content_hash = ? ORDER BY rowid", (content_hash,)
            ).fetchall()
            return [self._row_to_record(r) for r in rows]

    @_store_errors
    def vectors(self, space: str, record_ids: Sequence[str]) -> dict[str, np.ndarray]:
        if not record_ids:
            return {}
        with self._lock:
            marks = ",".join("?" * len(record_ids))
            rows = self._conn.execute(
                f"SELECT r.id, v.vec FROM vectors v JOIN records r ON r.rowid = v.rid "
                f"WHERE v.space = ? AND r.id IN ({marks})", (space, *record_ids),
            ).fetchall()
        return {rid: np.frombuffer(blob, dtype=np.float32) for rid, blob in rows}

    @_store_errors
    def delete(self, record_ids: Sequence[str]) -> int:
        if not record_ids:
            return 0
        with self._lock:
            self._sync()
            marks = ",".join("?" * len(record_ids))
            with self._write() as conn:
                rids = [r[0] for r in conn.execute(f"SELECT rowid FROM records WHERE id IN ({marks})", tuple(record_ids))]
                if rids:
                    conn.execute(f"DELETE FROM records WHERE rowid IN ({','.join('?' * len(rids))})", rids)
            for idx in self._indexes.values():
                idx.remove(rids)
            self._synced_generation = self._expect_own_write()
            self._rebuild_if_needed()
            return len(rids)

    def _filter_sql(self, objects: Sequence[str] | None, where: RecordFilter | None = None) -> tuple[str, tuple[Any, ...]]:
        wanted = normalise_objects(objects)
        conds, args = where_sql(where)
        if wanted is not None:
            conds.append(f"rowid IN (SELECT rid FROM tags WHERE label IN ({','.join('?' * len(wanted))}))")
            args += wanted
        return ("WHERE " + " AND ".join(conds) if conds else ""), tuple(args)

    @_store_errors
    def list(self, objects: Sequence[str] | None = None, limit: int = 100, offset: int = 0,
             where: RecordFilter | None = None) -> list[ImageRecord]:
        sql, args = self._filter_sql(objects, where)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM records {sql} ORDER BY rowid LIMIT ? OFFSET ?",
                (*args, max(0, limit), max(0, offset)),
            ).fetchall()
            return [self._row_to_record(r) for r in rows]

    @_store_errors
    def count(self, objects: Sequence[str] | None = None, where: RecordFilter | None = None) -> int:
        sql, args = self._filter_sql(objects, where)
        with self._lock:
            return int(self._conn.execute(f"SELECT COUNT(*) FROM records {sql}", args).fetchone()[0])

    @_store_errors
    def object_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT label, COUNT(DISTINCT rid) FROM tags GROUP BY label").fetchall()
        return {str(label): int(n) for label, n in rows}

    @_store_errors
    def query(
        self, space: str, vector: np.ndarray, k: int, objects: Sequence[str] | None = None,
        where: RecordFilter | None = None,
    ) -> builtins.list[tuple[str, float]]:
        if space not in self._spaces:
            raise StoreError(f"unknown vector space {space!r}; configured: {sorted(self._spaces)}")
        with self._lock:
            self._sync()
            allowed = selector = None
            if normalise_objects(objects) is not None or where is not None:
                allowed, selector = self._allowed_rowids(objects, where)
                if not len(allowed):
                    return []
                k = min(k, len(allowed))
            index = self._indexes[space]
            q = np.asarray(vector, np.float32)
            # an approximate index ranks by 8-bit codes: take more candidates than asked and
            # score them exactly with the vectors SQLite keeps (the refine step of IndexRefine)
            fetch = k + max(k, REFINE_EXTRA) if index.approximate else k
            sims, rids = index.search(q, fetch, allowed, selector)
            if not len(rids):
                return []
            marks = ",".join("?" * len(rids))
            if not index.approximate:
                id_of = dict(self._conn.execute(f"SELECT rowid, id FROM records WHERE rowid IN ({marks})",
                                                [int(r) for r in rids]).fetchall())
                return [(id_of[int(r)], float(s)) for s, r in zip(sims, rids, strict=True) if int(r) in id_of]
            # the candidates' vectors alone (one B-tree per row), then the ids of the k kept:
            # a third cheaper than joining the records for every candidate
            rows = self._conn.execute(f"SELECT rid, vec FROM vectors WHERE space = ? AND rid IN ({marks})",
                                      [space, *(int(r) for r in rids)]).fetchall()
            if not rows:
                return []
            exact = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows]) @ q
            order = np.argsort(-exact, kind="stable")[:k]
            kept = [int(rows[i][0]) for i in order]
            id_of = dict(self._conn.execute(
                f"SELECT rowid, id FROM records WHERE rowid IN ({','.join('?' * len(kept))})", kept).fetchall())
        return [(id_of[rid], float(exact[i])) for rid, i in zip(kept, order, strict=True) if rid in id_of]

    def _allowed_rowids(self, objects: Sequence[str] | None, where: RecordFilter | None) -> tuple[np.ndarray, Any]:
        """The rowids of records that pass the filters and a FAISS selector of them, kept until
        the next write (by any process: ``_sync`` has just checked the generation), so repeated
        filters skip SQLite."""
        key = (str(self._synced_generation), where, *(normalise_objects(objects) or ()))
        found = self._allowed.get(key)
        if found is None:
            sql, args = self._filter_sql(objects, where)
            rows = self._conn.execute(f"SELECT rowid FROM records {sql}", args).fetchall()
            rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            found = (rowids, self.faiss.IDSelectorBatch(rowids) if len(rowids) else None)
            if not self._allowed or next(iter(self._allowed))[0] != key[0]:
                self._allowed = {}  # entries of an older generation
            if len(self._allowed) >= 64:
                self._allowed.pop(next(iter(self._allowed)))
            self._allowed[key] = found
        return found

    def close(self) -> None:
        with self._lock:
            if self._conn is None:  # type: ignore[comparison-overlap]
                return
            try:
                self.save()
            except (OSError, RuntimeError, StoreError) as exc:  # the index is rebuilt on next open
                log.warning("could not save the FAISS indexes of %s: %s", self.db_file, exc)
            finally:
                self._conn.close()
                self._conn = None  # type: ignore[assignment]


class FaissSettings(PluginSettings):
    """Settings of the ``faiss`` store (``IMGCTX_FAISS_*``)."""

    model_config = plugin_config("faiss")

    exact_search_limit: int = Field(
        50_000, ge=0, description="Search exactly up to this many vectors per space, approximately beyond.",
    )
    search_threads: int = Field(
        1, ge=0, description="OpenMP threads one search may use (0: FAISS's default, every core). "
                             "One query gains little from more, and concurrent queries on a server compete for them.",
    )


def faiss_factory(settings: Settings) -> FaissStore:
    return FaissStore(db_path=settings.db_path, collection=settings.collection_name,
                      exact_search_limit=settings.plugin(FaissSettings).exact_search_limit,
                      search_threads=settings.plugin(FaissSettings).search_threads)


@hookimpl
def register_stores(register: Any) -> None:
    register("faiss", faiss_factory, settings=FaissSettings)
