"""The server's watched folders (``IMGCTX_WATCH_DIRS``): a :class:`imgctx.Watcher` per app, its
changes published on the ``processing`` WebSocket channel (``/ws/processing``) as
``watch_batch`` messages."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from imgctx import BatchReport, Watcher

if TYPE_CHECKING:
    from imgctx.server.state import AppState


def watch_message(report: BatchReport) -> dict[str, Any]:
    """What ``/ws/processing`` subscribers get for each batch of changes the watcher applied."""
    return {
        "type": "watch_batch",
        "total_files": report.total_files,
        "processed": report.processed,
        "moved": report.moved,
        "skipped": report.skipped,
        "failed": report.failed,
        "processed_ids": list(report.processed_ids),
        "removed_ids": list(report.pruned_ids),
        "failed_files": [{"path": f.path, "reason": f.reason} for f in report.failed_files],
    }


def start_watching(state: AppState) -> Watcher | None:
    """Start watching the configured folders (each must lie in the allowed roots); None when
    there are none. Call on the event loop, once the Extractor is open."""
    folders = [state.guard.resolve(d, "watch_dirs") for d in state.server.watch_dirs]
    if not folders:
        return None
    loop = asyncio.get_running_loop()

    def publish(report: BatchReport) -> None:
        state.hub.publish_threadsafe("processing", watch_message(report), loop)

    return Watcher(state.extractor, folders, recursive=state.server.watch_recursive,
                   debounce=state.server.watch_debounce, on_batch=publish).start()


async def stop_watching(watcher: Watcher | None) -> None:
    """Stop after the chunk in progress (off the event loop)."""
    if watcher is not None:
        await asyncio.to_thread(watcher.stop)
