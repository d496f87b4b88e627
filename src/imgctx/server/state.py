"""What the routes share: the Extractor, settings, path guard, tasks, WebSocket hub, counters."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import HTTPConnection

from imgctx import Extractor, ImageRecord, ServerSettings, Settings
from imgctx.server.budget import DecodeBudget
from imgctx.server.hub import Hub
from imgctx.server.paths import PathGuard
from imgctx.server.schemas import image_info_data
from imgctx.server.tasks import TaskManager

T = TypeVar("T")


class Metrics:
    """Request counters for ``/api/v1/metrics`` (updated by a small ASGI middleware)."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.seconds = 0.0

    def record(self, status: int, seconds: float) -> None:
        self.requests += 1
        self.by_status[status] += 1
        self.seconds += seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "errors": sum(v for k, v in self.by_status.items() if k >= 400),
            "average_response_time": round(self.seconds / self.requests, 6) if self.requests else 0.0,
        }


class AppState:
    """One per app (``app.state.imgctx``); the Extractor is set when the app starts."""

    def __init__(self, settings: Settings, server: ServerSettings, extractor: Extractor | None) -> None:
        self.settings = settings
        self.server = server
        self._extractor = extractor
        self.owns_extractor = extractor is None
        self.guard = PathGuard(server.allowed_roots)
        self.hub = Hub()
        self.metrics = Metrics()
        self.limiter = CapacityLimiter(server.worker_threads)
        self.write_limiter = CapacityLimiter(1)
        self.decodes = DecodeBudget(server.decode_memory_bytes, settings.max_image_pixels)
        self.started = time.monotonic()
        self.tasks: TaskManager | None = None

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            raise RuntimeError("the app has not started (use it inside its lifespan)")
        return self._extractor

    @extractor.setter
    def extractor(self, value: Extractor | None) -> None:
        self._extractor = value

    @property
    def task_manager(self) -> TaskManager:
        if self.tasks is None:
            raise RuntimeError("the app has not started (use it inside its lifespan)")
        return self.tasks

    @property
    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (models, store, disk) in the worker pool, off the event loop."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=self.limiter)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like :meth:`run` for work that changes the store: one at a time, in a thread of its
        own, so waiting writers hold no worker thread and searches never wait for them."""
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs),
                                              limiter=self.write_limiter)

    def announce(self, event: str, record: ImageRecord | None = None, **extra: Any) -> None:
        """Tell ``images`` channel subscribers that a record changed (call on the event loop)."""
        message: dict[str, Any] = {"type": event, **extra}
        if record is not None:
            message["image_id"] = record.id
            message["image_info"] = image_info_data(record)
        self.hub.publish("images", message)


async def get_state(conn: HTTPConnection) -> AppState:
    """FastAPI dependency: the app's state (async, so FastAPI runs it without a thread hop)."""
    state: AppState = conn.app.state.imgctx
    return state
