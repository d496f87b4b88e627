"""The server's watched folders (IMGCTX_WATCH_DIRS): files written while the app runs are
indexed and reported on /ws/processing; a folder outside the allowed roots is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from server_support import make_app, photo_root, wait_for  # noqa: E402

API = "/api/v1"


def test_watched_folder_is_indexed_and_reported(tmp_path: Path, photo_dir: Path) -> None:
    root = photo_root(tmp_path, photo_dir)
    inbox = root / "inbox"
    inbox.mkdir()
    app = make_app(tmp_path, root, watch_dirs=[inbox], watch_debounce=0.2)
    with TestClient(app) as client, client.websocket_connect("/ws/processing") as ws:
        ws.receive_json()  # connected
        shutil.copy(photo_dir / "chelsea.jpg", inbox / "cat.jpg")
        for _ in range(50):
            message = ws.receive_json()
            if message.get("type") == "watch_batch" and message["processed"] == 1:
                break
        else:
            raise AssertionError("no watch_batch message")
        assert message["channel"] == "processing" and message["failed"] == 0
        listed = client.get(f"{API}/images").json()
        assert any(item["filename"] == "cat.jpg" for item in listed), listed
        (inbox / "cat.jpg").unlink()
        for _ in range(50):
            message = ws.receive_json()
            if message.get("type") == "watch_batch" and message["removed_ids"]:
                break
        else:
            raise AssertionError("no removal reported")
        wait_for(lambda: not any(i["filename"] == "cat.jpg" for i in client.get(f"{API}/images").json()))


def test_watch_dir_outside_the_allowed_roots_is_refused(tmp_path: Path, photo_dir: Path) -> None:
    root = photo_root(tmp_path, photo_dir)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    app = make_app(tmp_path, root, watch_dirs=[outside])
    with pytest.raises(Exception, match="outside the allowed roots"), TestClient(app):
        pass
