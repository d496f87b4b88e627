"""Keeping an index in sync with folders while they change (``imgctx watch``, the server's
watched folders).

The ``watchdog`` library reports file events (inotify on Linux, FSEvents on macOS, a poller
elsewhere). Events only mark paths as pending; a path is taken once no event has touched it for
``debounce`` seconds and its size and modification time are what they were at the previous
look, so a file still being written is never read half-done. Taken files are indexed in chunks
through the ordinary ingest (moved files keep their outputs, unchanged files are skipped);
deleted files lose their records once nothing is pending, so that a move's new name is indexed
before its old record could be dropped.

Stopping (``stop()``, or Ctrl-C in ``run()``) between or inside chunks leaves a consistent
store: each ingest batch is one store transaction, and what was not taken yet is indexed by the
next run or ``imgctx index``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgctx._errors import MissingDependencyError
from imgctx._images import absolute, is_image_name
from imgctx._types import BatchReport

if TYPE_CHECKING:
    from imgctx._extractor import Extractor

log = logging.getLogger(__name__)

#: Files per ingest call: stopping waits at most for one chunk.
CHUNK = 256
#: A deletion waits for pending files at most this many debounce periods (a move's new name
#: should be indexed first, but a folder that never stops changing must not block deletions).
DELETE_PATIENCE = 10


def _empty_report(pruned: Sequence[str] = ()) -> BatchReport:
    return BatchReport(total_files=0, processed=0, skipped=0, failed=0, processed_ids=(), skipped_ids=(),
                       failed_files=(), processing_time=0.0, pruned_ids=tuple(pruned))


class _Pending:
    """Paths touched by events: when last touched and the (size, mtime) seen at the last look."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed: dict[str, tuple[float, tuple[int, int] | None]] = {}
        self.deleted: dict[str, float] = {}
        self.folders_gone: dict[str, float] = {}
        self.wake = threading.Event()

    def touch(self, path: str) -> None:
        with self.lock:
            self.changed[path] = (time.monotonic(), None)
            self.deleted.pop(path, None)
        self.wake.set()

    def delete(self, path: str, folder: bool = False) -> None:
        with self.lock:
            (self.folders_gone if folder else self.deleted)[path] = time.monotonic()
            self.changed.pop(path, None)
        self.wake.set()

    def take_ready(self, debounce: float) -> tuple[list[str], list[str]]:
        """(files ready to index, files gone); the rest stays pending."""
        now = time.monotonic()
        ready: list[str] = []
        gone: list[str] = []
        with self.lock:
            for path, (when, seen) in list(self.changed.items()):
                if now - when < debounce:
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    del self.changed[path]
                    gone.append(path)
                    continue
                facts = (st.st_size, st.st_mtime_ns)
                if seen == facts:
                    del self.changed[path]
                    ready.append(path)
                else:
                    self.changed[path] = (now, facts)  # look again after another quiet period
        return sorted(ready), gone

    def take_deleted(self, debounce: float) -> tuple[list[str], list[str]]:
        """(deleted files, deleted folders) once nothing is pending, or once they waited long."""
        now = time.monotonic()
        with self.lock:
            patient = not self.changed
            files = [p for p, t in self.deleted.items() if patient or now - t > DELETE_PATIENCE * debounce]
            folders = [p for p, t in self.folders_gone.items() if patient or now - t > DELETE_PATIENCE * debounce]
            for p in files:
                del self.deleted[p]
            for p in folders:
                del self.folders_gone[p]
        return files, folders

    def idle(self) -> bool:
        with self.lock:
            return not (self.changed or self.deleted or self.folders_gone)


def _handler(pending: _Pending, watched: Callable[[str], bool]) -> Any:
    try:
        from watchdog.events import FileSystemEventHandler
    except ImportError:
        raise MissingDependencyError("watching folders", "watchdog", "pip install watchdog") from None

    class Handler(FileSystemEventHandler):  # type: ignore[misc]
        def on_any_event(self, event: Any) -> None:
            kind = event.event_type
            src = os.fsdecode(event.src_path)
            if kind in ("opened", "closed_no_write"):
                return
            if kind == "moved":
                self._gone(src, event.is_directory)
                dest = os.fsdecode(event.dest_path)
                if event.is_directory:
                    for root, _dirs, files in os.walk(dest):
                        for name in files:
                            self._changed(os.path.join(root, name))
                else:
                    self._changed(dest)
            elif kind == "deleted":
                self._gone(src, event.is_directory)
            elif not event.is_directory:
                self._changed(src)

        def _changed(self, path: str) -> None:
            if watched(path):
                pending.touch(str(absolute(path)))

        def _gone(self, path: str, is_directory: bool) -> None:
            if is_directory:
                pending.delete(str(absolute(path)), folder=True)
            elif watched(path):
                pending.delete(str(absolute(path)))

    return Handler()


class Watcher:
    """Keeps ``extractor``'s index in sync with ``directories`` while it runs.

    ``run()`` blocks (Ctrl-C stops it); ``start()`` runs it in a background thread until
    ``stop()``. ``on_batch`` is called with a :class:`BatchReport` after each change is applied
    (``pruned_ids`` holds the records of deleted files). With ``initial_sync`` each folder is
    first indexed (and pruned) as ``Extractor.process_directory`` does.
    """

    def __init__(self, extractor: Extractor, directories: Iterable[str | os.PathLike[str]],
                 recursive: bool = False, debounce: float = 1.0,
                 on_batch: Callable[[BatchReport], None] | None = None, initial_sync: bool = True) -> None:
        if debounce <= 0:
            raise ValueError(f"debounce must be positive, got {debounce}")
        self.extractor = extractor
        self.directories = [absolute(d) for d in directories]
        for d in self.directories:
            if not d.is_dir():
                from imgctx._errors import ImageNotFoundError

                raise ImageNotFoundError(d, "directory not found" if not d.exists() else "not a directory")
        self.recursive = recursive
        self.debounce = debounce
        self.on_batch = on_batch
        self.initial_sync = initial_sync
        self._pending = _Pending()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: Any = None
        self.ready = threading.Event()  # set once the folders are watched (after the initial sync)

    def _watched(self, path: str) -> bool:
        p = Path(path)
        if p.name.startswith(".") or not is_image_name(p.name):
            return False
        for d in self.directories:
            rel = p.parent.relative_to(d) if p.parent.is_relative_to(d) else None
            if rel is not None and (self.recursive or rel == Path(".")) \
                    and not any(part.startswith(".") for part in rel.parts):
                return True
        return False

    def _observe(self) -> None:
        try:
            from watchdog.observers import Observer
        except ImportError:
            raise MissingDependencyError("watching folders", "watchdog", "pip install watchdog") from None
        self._observer = Observer()
        handler = _handler(self._pending, self._watched)
        for d in self.directories:
            self._observer.schedule(handler, str(d), recursive=self.recursive)
        self._observer.start()

    def _emit(self, report: BatchReport) -> None:
        if self.on_batch is not None and (report.total_files or report.pruned_ids):
            self.on_batch(report)

    def sync_now(self) -> None:
        """Apply what is pending and ready (one step of ``run``)."""
        ready, gone = self._pending.take_ready(self.debounce)
        for start in range(0, len(ready), CHUNK):
            if self._stop.is_set():
                for path in ready[start:]:  # not taken: pending again for the next look
                    self._pending.touch(path)
                break
            self._emit(self.extractor.process_many(ready[start:start + CHUNK]))
        for path in gone:
            self._pending.delete(path)
        files, folders = self._pending.take_deleted(self.debounce)
        pruned: list[str] = []
        for path in files:
            record = self.extractor.get_by_path(path)
            if record is not None and not os.path.exists(path):
                self.extractor.delete(record.id)
                pruned.append(record.id)
        for folder in folders:
            pruned.extend(self.extractor.prune(folder, recursive=True))
        self._emit(_empty_report(pruned))

    def run(self) -> None:
        """Watch until ``stop()`` (or Ctrl-C, which is re-raised after the observer stops)."""
        try:
            self._observe()  # before the initial sync: nothing written meanwhile is missed
            if self.initial_sync:
                for d in self.directories:
                    if self._stop.is_set():
                        break
                    self._emit(self.extractor.process_directory(d, recursive=self.recursive))
            self.ready.set()
            tick = min(0.25, self.debounce / 2)
            while not self._stop.is_set():
                self._pending.wake.wait(tick)
                self._pending.wake.clear()
                self.sync_now()
        finally:
            self.ready.set()
            if self._observer is not None:
                self._observer.stop()
                self._observer.join(timeout=5)

    def idle(self) -> bool:
        """True when no change is waiting to be applied."""
        return self._pending.idle()

    def start(self) -> Watcher:
        """Run in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_logged, name="imgctx-watch", daemon=True)
            self._thread.start()
        return self

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("the folder watcher stopped")

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the chunk in progress; waits up to ``timeout`` for the background thread."""
        self._stop.set()
        self._pending.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

