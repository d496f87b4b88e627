"""What the user removed from the index as a duplicate, remembered so that re-indexing the folder
does not bring it back.

Each entry is a file path with the size and modification time the file had when its record was
removed: while the file is still exactly that (same size and mtime), indexing leaves it out; once
it changes, it is a new image and is indexed again (and the entry forgotten). ``force`` and an
explicit undo forget entries too.

Entries live in a small SQLite file beside the store (``<db_path>/<collection>.removed.sqlite3``),
created only when something is first removed; a store that keeps nothing on disk (``memory``)
keeps them in memory with itself.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from imgctx._errors import StoreError

_SCHEMA = """CREATE TABLE IF NOT EXISTS removed (
    path TEXT PRIMARY KEY, file_size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    kept_id TEXT NOT NULL, removed_at REAL NOT NULL
)"""


class RemovedDuplicates:
    """The set of files removed as duplicates (see the module docstring). Thread-safe."""

    def __init__(self, file: Path | None) -> None:
        self.file = file
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @classmethod
    def beside(cls, store: object, db_path: Path, collection: str) -> RemovedDuplicates:
        """The entries of ``store``: on disk in ``db_path``, or in memory for a store that is."""
        if getattr(store, "persistent", True) is False:
            return cls(None)
        return cls(db_path / f"{collection}.removed.sqlite3")

    def _db(self, create: bool) -> sqlite3.Connection | None:
        if self._conn is None:
            if self.file is not None and not self.file.exists() and not create:
                return None
            try:
                if self.file is not None:
                    self.file.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(":memory:" if self.file is None else self.file,
                                             check_same_thread=False, isolation_level=None)
                self._conn.execute("PRAGMA busy_timeout=30000")
                self._conn.execute(_SCHEMA)
            except (OSError, sqlite3.DatabaseError) as exc:
                raise StoreError(f"cannot open the list of removed duplicates at {self.file}: {exc}") from None
        return self._conn

    def remember(self, entries: Iterable[tuple[str, str]]) -> int:
        """Remember ``(path, kept_id)`` pairs, with each file's current size and mtime; files
        that no longer exist are skipped. Returns how many were remembered."""
        rows = []
        now = time.time()
        for path, kept_id in entries:
            try:
                st = os.stat(path)
            except OSError:
                continue
            rows.append((path, st.st_size, st.st_mtime_ns, kept_id, now))
        if not rows:
            return 0
        with self._lock:
            db = self._db(create=True)
            assert db is not None
            db.executemany("INSERT OR REPLACE INTO removed VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def excluded(self, paths: Sequence[str]) -> set[str]:
        """Those of ``paths`` that were removed as duplicates and have not changed since; the
        entries of those that changed are forgotten."""
        with self._lock:
            db = self._db(create=False)
            if db is None or not paths:
                return set()
            known: dict[str, tuple[int, int]] = {}
            for start in range(0, len(paths), 500):
                chunk = list(paths[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for path, size, mtime in db.execute(
                        f"SELECT path, file_size, mtime_ns FROM removed WHERE path IN ({marks})", chunk):
                    known[path] = (size, mtime)
        out: set[str] = set()
        changed: list[str] = []
        for path, (size, mtime) in known.items():
            try:
                st = os.stat(path)
            except OSError:
                changed.append(path)
                continue
            if (st.st_size, st.st_mtime_ns) == (size, mtime):
                out.add(path)
            else:
                changed.append(path)
        self.forget(changed)
        return out

    def paths(self) -> list[str]:
        """Every remembered path, sorted."""
        with self._lock:
            db = self._db(create=False)
            if db is None:
                return []
            return [row[0] for row in db.execute("SELECT path FROM removed ORDER BY path")]

    def forget(self, paths: Iterable[str] | None = None) -> list[str]:
        """Forget the given paths (all with None); returns those that were remembered."""
        with self._lock:
            db = self._db(create=False)
            if db is None:
                return []
            if paths is None:
                gone = [row[0] for row in db.execute("SELECT path FROM removed ORDER BY path")]
                db.execute("DELETE FROM removed")
                return gone
            wanted = list(dict.fromkeys(paths))
            gone = []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                gone += [row[0] for row in db.execute(f"SELECT path FROM removed WHERE path IN ({marks})", chunk)]
                db.execute(f"DELETE FROM removed WHERE path IN ({marks})", chunk)
            return sorted(gone)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self.file is not None:
                self._conn.close()
                self._conn = None
