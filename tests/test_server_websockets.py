"""WebSocket channels through Starlette's TestClient: /ws, /ws/processing, /ws/search, /ws/stats."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from server_support import make_app, photo_root, wait_for  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from imgctx import Extractor  # noqa: E402
from imgctx.testing import TinyImageEmbedder, settings_for_tests  # noqa: E402

API = "/api/v1"


@pytest.fixture
def root(tmp_path: Path, photo_dir: Path) -> Path:
    return photo_root(tmp_path, photo_dir)


@pytest.fixture
def client(tmp_path: Path, root: Path) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path, root)) as c:
        yield c


def receive_until(ws: Any, predicate: Callable[[dict[str, Any]], bool], limit: int = 500) -> list[dict[str, Any]]:
    """Messages up to and including the first that matches (at most ``limit``)."""
    seen = []
    for _ in range(limit):
        message = ws.receive_json()
        seen.append(message)
        if predicate(message):
            return seen
    raise AssertionError(f"no matching message in {limit}: {seen[-3:]}")


def test_ws_ping_subscribe_unsubscribe(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "connected" and hello["channels"] == []
        assert set(hello["available_channels"]) == {"processing", "images"}
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
        ws.send_json({"type": "subscribe", "channel": "processing"})
        assert ws.receive_json() == {"type": "subscribed", "channel": "processing", "channels": ["processing"]}
        assert client.get("/ws/stats").json()["subscriptions"]["processing"] == 1
        ws.send_json({"type": "unsubscribe", "channel": "processing"})
        assert ws.receive_json()["type"] == "unsubscribed"
        assert client.get("/ws/stats").json()["subscriptions"]["processing"] == 0


def test_ws_malformed_messages_get_errors_and_keep_the_connection(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        for bad in ("not json", "[1, 2]", '{"type": "dance"}', '{"type": "subscribe", "channel": "nope"}',
                    '{"type": "subscribe"}', "x" * 70_000):
            ws.send_text(bad)
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["message"], bad
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_ws_images_channel_announces_processing(client: TestClient, root: Path) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "channel": "images"})
        ws.receive_json()
        image_id = client.post(f"{API}/images/process", json={"image_path": "photos/chelsea.jpg"}).json()["image_id"]
        event = ws.receive_json()
        assert event["type"] == "image_processed" and event["channel"] == "images"
        assert event["image_id"] == image_id and event["image_info"]["filename"] == "chelsea.jpg"
        client.delete(f"{API}/images/{image_id}")
        assert ws.receive_json()["type"] == "image_deleted"


def test_ws_processing_streams_task_progress(tmp_path: Path, root: Path) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny", batch_size=1)
    with Extractor(settings=settings, image_embedder=TinyImageEmbedder(delay=0.02)) as ex, \
            TestClient(make_app(tmp_path, root, extractor=ex)) as c, c.websocket_connect("/ws/processing") as ws:
        assert ws.receive_json()["channels"] == ["processing"]
        task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
        events = receive_until(ws, lambda m: m.get("task", {}).get("status") == "completed")
    assert events[0]["type"] == "task_created" and events[0]["task"]["status"] == "queued"
    assert all(e["task_id"] == task_id and e["channel"] == "processing" for e in events)
    messages = [e["task"]["message"] for e in events]
    for i in range(1, 7):
        assert f"Processing image {i} of 6" in messages
    progress = [e["task"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100.0
    assert events[-1]["task"]["result"]["processed"] == 6


def test_ws_general_channel_receives_processing_after_subscribing(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "subscribe", "channel": "processing"})
        ws.receive_json()
        client.post(f"{API}/directories/process-async", json={"directory_path": "photos"})
        events = receive_until(ws, lambda m: m.get("task", {}).get("status") == "completed")
        assert events[0]["type"] == "task_created"


def test_ws_search_answers_each_query(client: TestClient) -> None:
    client.post(f"{API}/directories/process", json={"directory_path": "photos"})
    with client.websocket_connect("/ws/search") as ws:
        ws.receive_json()
        typed = ["d", "da", "dar", "dark", "dark b", "dark blue"]
        for i, text in enumerate(typed):
            ws.send_json({"type": "search", "query": text, "limit": 3, "id": i})
        replies = [ws.receive_json() for _ in typed]
        assert [r["id"] for r in replies] == list(range(len(typed)))
        assert all(r["type"] == "search_results" for r in replies)
        last = replies[-1]
        assert last["query"] == "dark blue" and 1 <= last["count"] <= 3
        http = client.get(f"{API}/images/", params={"query": "dark blue", "limit": 3}).json()
        assert [r["id"] for r in last["results"]] == [h["id"] for h in http]
        ws.send_json({"query": "", "id": "empty"})
        assert ws.receive_json() == {"type": "search_results", "id": "empty", "query": "", "results": [],
                                     "count": 0, "search_time": 0.0}
        ws.send_json({"type": "search", "query": "x", "limit": 0})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "search", "query": "x", "min_score": 5})
        assert "min_score" in ws.receive_json()["message"]
        ws.send_json({"type": "search"})
        assert ws.receive_json()["type"] == "error"
        ws.send_json({"type": "search", "query": "dark", "objects": ["nothing-like-this"]})
        assert ws.receive_json()["results"] == []
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


def test_ws_stats_counts_connections_and_messages(client: TestClient) -> None:
    before = client.get("/ws/stats").json()
    assert before["active_connections"] == 0
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws/search") as b:
        a.receive_json(), b.receive_json()
        a.send_json({"type": "ping"})
        a.receive_json()
        stats = client.get("/ws/stats").json()
        assert stats["active_connections"] == 2
        assert stats["connections_by_endpoint"] == {"/ws": 1, "/ws/search": 1}
        assert stats["messages_received"] >= 1 and stats["messages_sent"] >= 3
    after = client.get("/ws/stats").json()
    assert after["active_connections"] == 0 and after["total_connections"] == 2


def test_ws_needs_the_api_key_when_configured(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, api_key="k-1")) as c:
        with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect("/ws") as ws:
            ws.receive_json()
        assert refused.value.code == 1008
        with c.websocket_connect("/ws?api_key=k-1") as ws:
            assert ws.receive_json()["type"] == "connected"
        with c.websocket_connect("/ws/search", headers={"X-API-Key": "k-1"}) as ws:
            assert ws.receive_json()["type"] == "connected"


def test_ws_client_leaving_mid_stream_is_cleaned_up(tmp_path: Path, root: Path) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny", batch_size=1)
    with Extractor(settings=settings, image_embedder=TinyImageEmbedder(delay=0.05)) as ex, \
            TestClient(make_app(tmp_path, root, extractor=ex)) as c:
        with c.websocket_connect("/ws/processing") as ws:
            ws.receive_json()
            task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
            ws.receive_json()  # task_created; then leave while updates are still coming
        wait_for(lambda: c.get(f"{API}/directories/task/{task_id}").json()["status"] == "completed")
        stats = c.get("/ws/stats").json()
        assert stats["active_connections"] == 0 and stats["subscriptions"]["processing"] == 0
        with c.websocket_connect("/ws") as ws:
            ws.receive_json()
            ws.send_json({"type": "ping"})
            assert ws.receive_json()["type"] == "pong"


def test_ws_refuses_pages_from_other_origins(tmp_path: Path, root: Path) -> None:
    """A browser page on another origin may not open a WebSocket (it sends an Origin header);
    clients that are not browsers send none and connect as before."""
    with TestClient(make_app(tmp_path, root)) as c:
        for path in ("/ws", "/ws/processing", "/ws/search"):
            with pytest.raises(WebSocketDisconnect) as refused:
                with c.websocket_connect(path, headers={"Origin": "http://evil.example"}) as ws:
                    ws.receive_json()
            assert refused.value.code == 1008
        with c.websocket_connect("/ws") as ws:
            assert ws.receive_json()["type"] == "connected"
    with TestClient(make_app(tmp_path, root, cors_origins=["http://app.example"])) as c:
        with c.websocket_connect("/ws", headers={"Origin": "http://app.example"}) as ws:
            assert ws.receive_json()["type"] == "connected"
        with pytest.raises(WebSocketDisconnect) as refused:
            with c.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
                ws.receive_json()
        assert refused.value.code == 1008
    with TestClient(make_app(tmp_path, root, dev=True)) as c:  # development: all origins
        with c.websocket_connect("/ws", headers={"Origin": "http://localhost:5173"}) as ws:
            assert ws.receive_json()["type"] == "connected"
