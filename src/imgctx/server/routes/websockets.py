"""WebSockets: ``/ws`` (ping, subscribe), ``/ws/processing``, ``/ws/search``; ``GET /ws/stats``.

Client messages are JSON objects with a ``type``. Every malformed message gets an ``error``
reply and the connection stays open; a disconnect at any moment is cleaned up.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from imgctx import ImgctxError, normalise_objects
from imgctx.server.errors import now_iso
from imgctx.server.hub import CHANNELS, Connection
from imgctx.server.schemas import SearchResult, WebSocketStats
from imgctx.server.security import API_KEY_HEADER, key_matches, origin_allowed, same_origin
from imgctx.server.state import AppState, get_state

router = APIRouter(tags=["websockets"])
stats_router = APIRouter(tags=["websockets"])
MAX_MESSAGE = 64 * 1024


async def _open(websocket: WebSocket, endpoint: str, channels: tuple[str, ...] = ()) -> Connection | None:
    state: AppState = websocket.app.state.imgctx
    refusal = None
    origin = websocket.headers.get("origin")
    if not origin_allowed(state.server, origin) and not same_origin(
            origin or "", websocket.headers.get("host"), websocket.scope.get("scheme", "ws")):
        refusal = "origin not allowed"  # the app's own page (same scheme and host) may connect
    elif not key_matches(state, websocket.headers.get(API_KEY_HEADER) or websocket.query_params.get("api_key")):
        refusal = "missing or wrong API key"
    if refusal is not None:  # accepted only to be closed with 1008 and the reason, as documented
        await websocket.accept()
        await websocket.close(code=1008, reason=refusal)
        return None
    conn = await state.hub.connect(websocket, endpoint, channels)
    conn.send({"type": "connected", "client_id": conn.client_id, "endpoint": endpoint,
               "channels": sorted(conn.channels), "available_channels": list(CHANNELS),
               "timestamp": now_iso()})
    return conn


async def _messages(conn: Connection) -> Any:
    """Yield each well-formed JSON object the client sends; answer the rest with an error."""
    ws = conn.websocket
    while True:
        frame = await ws.receive()
        if frame["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(frame.get("code", 1000), frame.get("reason"))
        conn.hub.received += 1
        text = frame.get("text")
        if text is None:  # a binary frame
            conn.send({"type": "error", "message": "binary messages are not supported; send JSON text"})
            continue
        if len(text) > MAX_MESSAGE:
            conn.send({"type": "error", "message": f"message over {MAX_MESSAGE} bytes"})
            continue
        try:
            message = json.loads(text)
        except ValueError:
            conn.send({"type": "error", "message": "message is not valid JSON"})
            continue
        if not isinstance(message, dict):
            conn.send({"type": "error", "message": "message must be a JSON object"})
            continue
        yield message


def _common(conn: Connection, message: dict[str, Any]) -> bool:
    """Handle ping, subscribe and unsubscribe; False when the message is something else."""
    kind = message.get("type")
    if kind == "ping":
        conn.send({"type": "pong", "timestamp": now_iso()})
    elif kind in ("subscribe", "unsubscribe"):
        channel = message.get("channel")
        if channel not in CHANNELS:
            conn.send({"type": "error", "message": f"unknown channel {channel!r}; channels: {', '.join(CHANNELS)}"})
        elif kind == "subscribe":
            conn.channels.add(channel)
            conn.send({"type": "subscribed", "channel": channel, "channels": sorted(conn.channels)})
        else:
            conn.channels.discard(channel)
            conn.send({"type": "unsubscribed", "channel": channel, "channels": sorted(conn.channels)})
    else:
        return False
    return True


async def _serve(websocket: WebSocket, endpoint: str, channels: tuple[str, ...] = (),
                 search: bool = False) -> None:
    conn = await _open(websocket, endpoint, channels)
    if conn is None:
        return
    state: AppState = websocket.app.state.imgctx
    try:
        async for message in _messages(conn):
            if _common(conn, message):
                continue
            if search and (message.get("type") in (None, "search", "query")):
                conn.send(await _search(state, message))
            else:
                conn.send({"type": "error", "message": f"unknown message type {message.get('type')!r}"})
    except WebSocketDisconnect:
        pass
    finally:
        await state.hub.disconnect(conn)
        if websocket.client_state == WebSocketState.CONNECTED:
            try:
                await websocket.close()
            except RuntimeError:
                pass


async def _search(state: AppState, message: dict[str, Any]) -> dict[str, Any]:
    """Answer one query message with results (an empty query gets no results, not an error)."""
    query = message.get("query")
    reply: dict[str, Any] = {"type": "search_results", "id": message.get("id"), "query": query}
    limit = message.get("limit", 10)
    offset = message.get("offset", 0)
    min_score = message.get("min_score")
    objects = message.get("objects")
    if not isinstance(query, str):
        return {"type": "error", "id": message.get("id"), "message": "a search message needs a 'query' string"}
    if isinstance(objects, list):
        objects = ",".join(str(o) for o in objects)
    if objects is not None and not isinstance(objects, str):
        return {"type": "error", "id": message.get("id"), "message": "'objects' must be a string or a list"}
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 100:
        return {"type": "error", "id": message.get("id"), "message": "'limit' must be an integer from 1 to 100"}
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= 10_000:
        return {"type": "error", "id": message.get("id"), "message": "'offset' must be an integer from 0 to 10000"}
    if not query.strip():
        return {**reply, "results": [], "count": 0, "search_time": 0.0}
    start = time.perf_counter()
    try:
        hits = await state.run(state.extractor.search, query, objects=normalise_objects(objects), limit=limit,
                               min_score=min_score, offset=offset)
    except ImgctxError as exc:
        return {"type": "error", "id": message.get("id"), "message": str(exc)}
    results = [SearchResult.data(h) for h in hits]
    return {**reply, "offset": offset, "results": results, "count": len(results),
            "search_time": round(time.perf_counter() - start, 4)}


@router.websocket("/ws")
async def ws_general(websocket: WebSocket) -> None:
    """General updates: ping/pong, subscribe/unsubscribe to ``processing`` and ``images``."""
    await _serve(websocket, "/ws")


@router.websocket("/ws/processing")
async def ws_processing(websocket: WebSocket) -> None:
    """Background task events (``task_created``, ``task_update``), subscribed from the start."""
    await _serve(websocket, "/ws/processing", channels=("processing",))


@router.websocket("/ws/search")
async def ws_search(websocket: WebSocket) -> None:
    """Live search: each ``{"type": "search", "query": ...}`` message is answered with results."""
    await _serve(websocket, "/ws/search", search=True)


@stats_router.get("/ws/stats", response_model=WebSocketStats)
async def ws_stats(state: AppState = Depends(get_state)) -> dict[str, Any]:
    """Connection and message counts."""
    return state.hub.stats()
