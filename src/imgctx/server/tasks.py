"""Background tasks (``directories/process-async``): state, progress, persistence.

Every change of a task is written to a small SQLite file and published on the ``processing``
WebSocket channel. At start-up, tasks that a previous server left queued or processing are
marked ``interrupted``: they are shown as such, never lost or left "processing" forever.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from imgctx import ImgctxError, StoreError
from imgctx.server.errors import TaskNotFoundError, now_iso
from imgctx.server.hub import Hub

log = logging.getLogger("imgctx.server")
ACTIVE = ("queued", "processing")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    progress REAL NOT NULL,
    message TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    directory_path TEXT
)
"""
_COLUMNS = ("task_id", "status", "progress", "message", "result", "error", "created_at",
            "updated_at", "directory_path")


class TaskCancelled(Exception):
    """Raised inside a task's progress callback when the server is stopping."""


@dataclass(frozen=True)
class Task:
    task_id: str
    status: str
    progress: float
    message: str
    created_at: str
    updated_at: str
    result: dict[str, Any] | None = None
    error: str | None = None
    directory_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Running:
    cancel: threading.Event = field(default_factory=threading.Event)
    future: asyncio.Task[None] | None = None


class TaskStore:
    """Tasks in one SQLite table; safe to call from any thread."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the task database {path}: {exc}") from None
        self._lock = threading.Lock()
        self._closed = False

    def save(self, task: Task) -> None:
        """Write a task; after ``close`` (a worker still finishing at shutdown) nothing is written."""
        row = (task.task_id, task.status, task.progress, task.message,
               json.dumps(task.result) if task.result is not None else None, task.error,
               task.created_at, task.updated_at, task.directory_path)
        with self._lock:
            if self._closed:
                return
            try:
                self._conn.execute(
                    f"INSERT OR REPLACE INTO tasks ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    row,
                )
            except sqlite3.Error as exc:
                full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                raise StoreError(f"{'disk full: ' if full else ''}cannot record the task: {exc}") from None

    def load(self) -> list[Task]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM tasks ORDER BY created_at, rowid"
            ).fetchall()
        tasks = []
        for row in rows:
            data = dict(zip(_COLUMNS, row, strict=True))
            data["result"] = json.loads(data["result"]) if data["result"] else None
            tasks.append(Task(**data))
        return tasks

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()


class TaskManager:
    """Creates, runs and reports background tasks; the store is written through on every change."""

    def __init__(self, store: TaskStore, hub: Hub) -> None:
        self.store = store
        self.hub = hub
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._running: dict[str, _Running] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        for task in store.load():
            if task.status in ACTIVE:
                task = replace(
                    task, status="interrupted", updated_at=now_iso(),
                    error="the server stopped before this task finished",
                    message=f"Interrupted: {task.message}",
                )
                store.save(task)
            self._tasks[task.task_id] = task

    def get(self, task_id: str) -> Task:
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFoundError(f"no task with id {task_id!r}", task_id=task_id)
        return task

    def list(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.list():
            out[task.status] = out.get(task.status, 0) + 1
        return out

    def update(self, task_id: str, **changes: Any) -> Task:
        """Change a task, persist it and publish it (from the event loop or a worker thread)."""
        with self._lock:
            task = replace(self._tasks[task_id], updated_at=now_iso(), **changes)
            self._tasks[task_id] = task
            try:
                self.store.save(task)
            except StoreError as exc:  # the change holds in memory: the task can still end
                log.warning("task %s: %s", task_id, exc)
        if self._loop is not None:
            message = {"type": "task_update", "task_id": task_id, "task": task.to_dict()}
            self.hub.publish_threadsafe("processing", message, self._loop)
        return task

    def submit(self, job: Callable[[Callable[[int, int], None]], dict[str, Any]],
               run: Callable[[Callable[[], dict[str, Any]]], Any],
               directory_path: str) -> Task:
        """Queue ``job(progress)``; ``run`` awaits it in a worker thread. The job calls
        ``progress(done, total)`` when it starts and after each file."""
        self._loop = asyncio.get_running_loop()
        stamp = now_iso()
        task = Task(task_id=str(uuid.uuid4()), status="queued", progress=0.0,
                    message="Directory processing queued", created_at=stamp, updated_at=stamp,
                    directory_path=directory_path)
        with self._lock:
            self.store.save(task)  # first: a task that cannot be recorded is not started at all
            self._tasks[task.task_id] = task
        self.hub.publish("processing", {"type": "task_created", "task_id": task.task_id, "task": task.to_dict()})
        running = _Running()
        self._running[task.task_id] = running

        def progress(done: int, total: int) -> None:
            if running.cancel.is_set():
                raise TaskCancelled()
            percent = round(100.0 * done / total, 1) if total else 100.0
            self.update(task.task_id, status="processing", progress=percent,
                        message=f"Processing image {done} of {total}")

        async def body() -> None:  # stays "queued" until the job's first progress call
            try:
                result = await run(lambda: job(progress))
            except TaskCancelled:
                self._interrupt(task.task_id)
            except ImgctxError as exc:
                self.update(task.task_id, status="failed", error=str(exc), message=f"Failed: {exc}")
            except Exception as exc:
                log.exception("task %s failed", task.task_id)
                reason = f"unexpected {type(exc).__name__} (see the server log)"
                self.update(task.task_id, status="failed", error=reason, message=f"Failed: {reason}")
            else:
                self.update(task.task_id, status="completed", progress=100.0, result=result,
                            message=result.get("message", "Directory processed"))
            finally:
                self._running.pop(task.task_id, None)

        running.future = asyncio.create_task(body())
        return task

    def _interrupt(self, task_id: str) -> None:
        """Mark a task the server stopped as ``interrupted``, worded as after a crash."""
        message = self.get(task_id).message
        if not message.startswith("Interrupted: "):
            message = f"Interrupted: {message}"
        self.update(task_id, status="interrupted", error="the server stopped before this task finished",
                    message=message)

    async def shutdown(self) -> None:
        """Ask running tasks to stop after their current batch, and wait briefly for them."""
        pending = list(self._running.items())
        for _, running in pending:
            running.cancel.set()
        futures = [r.future for _, r in pending if r.future is not None]
        if futures:
            await asyncio.wait(futures, timeout=10)
        for task_id, _ in pending:
            if self.get(task_id).status in ACTIVE:
                self._interrupt(task_id)
        self._loop = None
        self.store.close()

