"""The real thing: uvicorn on a loopback port, driven over HTTP (httpx) and WebSockets
(the websockets client); the console entry points start a working server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
ws_client = pytest.importorskip("websockets.sync.client")

from server_support import free_port, make_app, photo_root, wait_for  # noqa: E402


@contextlib.contextmanager
def _running(app: Any) -> Iterator[int]:
    """The port of a uvicorn server running ``app`` in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=30)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.fixture
def live(tmp_path: Path, photo_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(base_url, root)`` of a uvicorn server running the app in a thread."""
    root = photo_root(tmp_path, photo_dir)
    with _running(make_app(tmp_path, root)) as port:
        yield f"http://127.0.0.1:{port}", root


def test_live_http_and_websocket(live: tuple[str, Path]) -> None:
    base, root = live
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.get("/api/v1/health").json()["status"] == "healthy"
        body = http.post("/api/v1/directories/process", json={"directory_path": "photos"}).json()
        assert body["processed"] == 6
        hits = http.get("/api/v1/images/", params={"query": "dark blue", "limit": 2}).json()
        assert len(hits) == 2
        r = http.post("/api/v1/images/process", json={"image_path": "/etc/passwd"})
        assert r.status_code == 403 and r.json()["success"] is False
        with open(root / "photos" / "coffee.jpg", "rb") as fh:
            up = http.post("/api/v1/images/upload", files={"file": ("mug.jpg", fh, "image/jpeg")})
        assert up.status_code == 201 and up.json()["image_id"]

    ws_base = base.replace("http://", "ws://")
    with ws_client.connect(f"{ws_base}/ws", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
        ws.send(json.dumps({"type": "subscribe", "channel": "processing"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        with httpx.Client(base_url=base, timeout=30) as http:
            task_id = http.post("/api/v1/directories/process-async",
                                json={"directory_path": "photos", "force_reprocess": True}).json()["task_id"]
        statuses = []
        while not statuses or statuses[-1] not in ("completed", "failed"):
            event = json.loads(ws.recv(timeout=30))
            assert event["task_id"] == task_id
            statuses.append(event["task"]["status"])
        assert statuses[0] == "queued" and statuses[-1] == "completed"
    hits = httpx.get(f"{base}/api/v1/images/", params={"query": "dark blue", "limit": 2}, timeout=30).json()
    with ws_client.connect(f"{ws_base}/ws/search", open_timeout=10) as ws:
        ws.recv(timeout=10)
        ws.send(json.dumps({"type": "search", "query": "dark blue", "limit": 2}))
        reply = json.loads(ws.recv(timeout=10))
        assert [r["id"] for r in reply["results"]] == [h["id"] for h in hits]


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_live_chunked_upload_over_the_limit_is_refused_before_its_end(tmp_path: Path, photo_dir: Path) -> None:
    """An upload without Content-Length (chunked) is counted as it arrives: the server answers 413
    once it passes the limit, without waiting for (or storing) the rest of the body."""
    root = photo_root(tmp_path, photo_dir)
    with _running(make_app(tmp_path, root, max_upload_bytes=1000)) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(b"POST /api/v1/images/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(_chunk(b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
                            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff"))
        for _ in range(10):  # 80 KiB: over the limit (1000 bytes and 64 KiB for the multipart framing)
            sock.sendall(_chunk(b"\xff" * 8192))
        # the body is left unfinished (no closing chunk): only a server that counts can answer now
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {received!r}"
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        while len(body) < int(headers[b"content-length"]):
            data = sock.recv(65536)
            assert data
            body += data
    assert head.startswith(b"HTTP/1.1 413 "), head
    answer = json.loads(body)
    assert answer["success"] is False and answer["error"] == "UploadTooLargeError"
    assert answer["details"]["status_code"] == 413
    uploads = root / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_live_pages_of_other_origins_cannot_write(live: tuple[str, Path]) -> None:
    """A form post is sent by a browser without a preflight: a page of another origin gets 403
    and nothing is written; a page of this server (its /docs) and non-browser clients may."""
    base, root = live
    data = (root / "photos" / "coffee.jpg").read_bytes()
    with httpx.Client(base_url=base, timeout=30) as http:
        def upload(name: str, **headers: str) -> httpx.Response:
            return http.post("/api/v1/images/upload", files={"file": (name, data, "image/jpeg")},
                             data={"upload_dir": "photos", "overwrite": "true"}, headers=headers)

        r = upload("chelsea.jpg", Origin="http://evil.example")
        assert r.status_code == 403 and r.json()["error"] == "OriginNotAllowedError"
        assert "access-control-allow-origin" not in r.headers
        assert (root / "photos" / "chelsea.jpg").read_bytes() != data  # not replaced
        assert http.post("/api/v1/models/preload", headers={"Origin": "null"}).status_code == 403
        assert http.get("/api/v1/images/", headers={"Origin": "http://evil.example"}).status_code == 200
        assert upload("mine.jpg", Origin=base).status_code == 201  # same origin: the server's own pages
        assert upload("cli.jpg").status_code == 201  # no Origin: not a browser
    assert (root / "photos" / "cli.jpg").read_bytes() == data


def _start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up() -> bool:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=60, every=0.2)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["imgctx serve", "imgctx serve --dev", "python -m imgctx.server"])
def test_entry_points_start_the_server(tmp_path: Path, photo_dir: Path, how: str) -> None:
    root = photo_root(tmp_path, photo_dir)
    port = free_port()
    env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
    db = str(tmp_path / "db")
    if how.startswith("imgctx serve"):
        args = [sys.executable, "-m", "imgctx", "serve", "--port", str(port), "--preset", "tiny", "--db", db,
                *how.split()[2:]]
    else:
        env["IMGCTX_PORT"] = str(port)
        args = [sys.executable, "-m", "imgctx.server", "--preset", "tiny", "--db", db]
    proc = _start(args, env, port)
    try:
        cfg = httpx.get(f"http://127.0.0.1:{port}/api/v1/config", timeout=10).json()
        assert cfg["settings"]["preset"] == "tiny" and cfg["settings"]["db_path"] == db
        assert cfg["server"]["allowed_roots"] == [str(root.resolve())]
        r = httpx.post(f"http://127.0.0.1:{port}/api/v1/images/process",
                       json={"image_path": "photos/rocket.jpg"}, timeout=30)
        assert r.status_code == 200, r.text
        # no cross-origin access by default; development mode allows all origins
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/images/", headers={"Origin": "http://page.example"},
                      timeout=10)
        assert r.headers.get("access-control-allow-origin") == ("*" if "--dev" in how else None)
    finally:
        _stop(proc)
    assert proc.returncode == 0


@pytest.mark.slow
def test_killed_server_shows_its_task_as_interrupted(tmp_path: Path, photo_dir: Path) -> None:
    """SIGKILL mid-task, start again: the task is 'interrupted', not lost or stuck 'processing'."""
    from PIL import Image

    root = tmp_path / "root"
    (root / "many").mkdir(parents=True)
    for i in range(1000):
        Image.new("RGB", (40, 30), (i % 256, (7 * i) % 256, 90)).save(root / "many" / f"{i:04}.png")
    port = free_port()
    env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_BATCH_SIZE": "4", "IMGCTX_PORT": str(port),
           "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
    args = [sys.executable, "-m", "imgctx.server", "--preset", "tiny", "--db", str(tmp_path / "db")]
    proc = _start(args, env, port)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        task_id = httpx.post(f"{base}/directories/process-async", json={"directory_path": "many"},
                             timeout=10).json()["task_id"]
        wait_for(lambda: httpx.get(f"{base}/directories/task/{task_id}", timeout=10).json()["progress"] > 0)
    finally:
        proc.kill()
        proc.wait()
    proc = _start(args, env, port)
    try:
        task = httpx.get(f"{base}/directories/task/{task_id}", timeout=10).json()
        assert task["status"] == "interrupted", task
        assert 0 < task["progress"] < 100
    finally:
        _stop(proc)


@pytest.mark.slow
def test_example_client_runs_against_a_live_server(live: tuple[str, Path]) -> None:
    base, root = live
    script = Path(__file__).resolve().parent.parent / "examples" / "api_examples.py"
    out = subprocess.run([sys.executable, str(script), "--url", base, "--photos", str(root / "photos")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "all endpoints answered as expected" in out.stdout
    assert "completed 100.0%" in out.stdout  # the background task, polled to its end
