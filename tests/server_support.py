"""Helpers for the server tests: an app over a folder of real photos with the tiny models."""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from imgctx import Extractor, ServerSettings
from imgctx.testing import settings_for_tests


def photo_root(tmp_path: Path, photo_dir: Path) -> Path:
    """``tmp_path/root/photos`` with copies of the sample photos; ``root`` is the allowed root."""
    root = tmp_path / "root"
    shutil.copytree(photo_dir, root / "photos")
    return root


#: The default host allow-list on loopback, plus the name Starlette's TestClient sends.
TEST_HOSTS = ("127.0.0.1", "localhost", "[::1]", "testserver")


def make_app(tmp_path: Path, root: Path, extractor: Extractor | None = None,
             settings_changes: dict[str, Any] | None = None, **server: Any) -> Any:
    """An app over ``root`` with the tiny models and a faiss store in ``tmp_path/db``."""
    from imgctx.server import create_app

    settings = settings_for_tests(tmp_path / "db", preset="tiny", **(settings_changes or {}))
    server.setdefault("allowed_hosts", TEST_HOSTS)
    return create_app(settings=None if extractor else settings, extractor=extractor,
                      server_settings=ServerSettings.from_values(allowed_roots=[root], **server))


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


def assert_envelope(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    """The contract's error envelope with this status (and error name)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["details"]["status_code"] == status
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.text
    assert body["timestamp"]
    if error is not None:
        assert body["error"] == error, body
    return body


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(app: Any) -> Iterator[int]:
    """The port of a uvicorn server running ``app`` on loopback in a thread (stopped on exit)."""
    import threading

    import uvicorn

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


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """The base URL of ``running(app)``."""
    with running(app) as port:
        yield f"http://127.0.0.1:{port}"


def raw_request(port: int, head: bytes, body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """Send ``head`` (and ``body``) on a fresh loopback connection; the status and JSON body of
    the answer. The answer is read whether or not the server waited for the rest of a body."""
    import json

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + body)
        received = b""
        while b"\r\n\r\n" not in received:
            data = sock.recv(65536)
            assert data, f"connection closed without an answer: {received!r}"
            received += data
        top, _, rest = received.partition(b"\r\n\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in top.split(b"\r\n")[1:])
        while len(rest) < int(headers.get(b"content-length", b"0")):
            data = sock.recv(65536)
            assert data
            rest += data
    return int(top.split(b" ")[1]), json.loads(rest) if rest else {}
