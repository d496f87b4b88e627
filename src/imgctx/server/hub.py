"""WebSocket connections, channels and broadcasting.

Each connection has one outgoing queue drained by one writer task, so messages from the
request loop and from background tasks never interleave on the socket and a slow client cannot
stall a broadcast (when its queue is full, messages to it are dropped and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Iterable
from typing import Any

from starlette.websockets import WebSocket

from imgctx.server.errors import now_iso

#: Channels a client may subscribe to on ``/ws``.
CHANNELS = ("processing", "images")
#: The WebSocket endpoints.
WEBSOCKET_PATHS = ("/ws", "/ws/processing", "/ws/search")
QUEUE_SIZE = 1000


class Connection:
    """One open WebSocket: its endpoint, channels and outgoing queue."""

    def __init__(self, hub: Hub, websocket: WebSocket, endpoint: str, client_id: int) -> None:
        self.hub = hub
        self.websocket = websocket
        self.endpoint = endpoint
        self.client_id = client_id
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.writer: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; dropped (and counted) when the client is too far behind."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.hub.dropped += 1

    async def _write(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                await self.websocket.send_json(message)
            except Exception:  # the client went away; the reader notices and cleans up
                return
            self.hub.sent += 1


class Hub:
    """All open connections, who listens to which channel, and counters for ``/ws/stats``."""

    def __init__(self) -> None:
        self.connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self.total = 0
        self.sent = 0
        self.received = 0
        self.dropped = 0

    async def connect(self, websocket: WebSocket, endpoint: str, channels: Iterable[str] = ()) -> Connection:
        await websocket.accept()
        conn = Connection(self, websocket, endpoint, next(self._ids))
        conn.channels.update(channels)
        conn.writer = asyncio.create_task(conn._write())
        self.connections[conn.client_id] = conn
        self.total += 1
        return conn

    async def disconnect(self, conn: Connection) -> None:
        self.connections.pop(conn.client_id, None)
        if conn.writer is not None:
            conn.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.writer

    def publish(self, channel: str, message: dict[str, Any]) -> int:
        """Queue a message for every subscriber of a channel (call on the event loop)."""
        message = {**message, "channel": channel}
        receivers = [c for c in self.connections.values() if channel in c.channels]
        for conn in receivers:
            conn.send(message)
        return len(receivers)

    def publish_threadsafe(self, channel: str, message: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        """:meth:`publish` from a worker thread."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is stopping
            loop.call_soon_threadsafe(self.publish, channel, message)

    def stats(self) -> dict[str, Any]:
        by_endpoint = Counter(c.endpoint for c in self.connections.values())
        subscriptions = Counter(ch for c in self.connections.values() for ch in c.channels)
        return {
            "active_connections": len(self.connections),
            "total_connections": self.total,
            "connections_by_endpoint": dict(by_endpoint),
            "subscriptions": {ch: subscriptions.get(ch, 0) for ch in CHANNELS},
            "messages_sent": self.sent,
            "messages_received": self.received,
            "messages_dropped": self.dropped,
            "timestamp": now_iso(),
        }

    async def close_all(self) -> None:
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await conn.websocket.close(code=1001)
            await self.disconnect(conn)
