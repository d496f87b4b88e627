"""The standard preset without a reachable model hub: decided once and quickly, then one clear
error (no retries, no warning printed twice). HF_HUB_OFFLINE is unset; the hub is a closed port
or a socket that never answers."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgctx._backends import hub


@pytest.fixture(autouse=True)
def _fresh_probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub._probes.clear()
    yield
    hub._probes.clear()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_hub_that_never_answers_is_decided_within_the_probe_time(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # connections complete, no answer ever comes
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        start = time.monotonic()
        assert hub.hub_unreachable() is True
        assert time.monotonic() - start < hub.PROBE_SECONDS + 1.5
        start = time.monotonic()
        assert hub.use_local_files(False) is True  # decided once: no second wait
        assert time.monotonic() - start < 0.1


def test_a_hub_that_answers_even_with_an_error_is_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # 501 to all
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        assert hub.hub_unreachable() is False and hub.use_local_files(False) is False
        assert hub.use_local_files(True) is True
    finally:
        server.shutdown()
        server.server_close()


def test_standard_preset_with_no_hub_fails_once_and_clearly(tmp_path: Path, photo_dir: Path) -> None:
    pytest.importorskip("open_clip")
    pytest.importorskip("transformers")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMGCTX_", "HF_"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{closed_port()}", HF_HOME=str(tmp_path / "hf"),
               IMGCTX_LOG_LEVEL="INFO")
    proc = subprocess.run([sys.executable, "-m", "imgctx", "--db", str(tmp_path / "db"), "--preset", "standard",
                           "index", str(photo_dir)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "cannot load" in errors[0] and "cannot be reached" in errors[0], proc.stderr
    assert "'offline' preset" in errors[0] and "IMGCTX_LOCAL_CLIP_MODEL_PATH" in errors[0]
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr
    messages = [line.split(": ", 1)[-1] for line in lines]
    assert len(messages) == len(set(messages)), proc.stderr  # no line printed twice
