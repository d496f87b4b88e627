"""Issue 11: the server probed as an attacker and as a faulty environment would. Real uvicorn
on loopback where the network matters, real SQLite and FAISS files, real images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from server_support import assert_envelope, make_app, photo_root, raw_request, running  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from imgctx import ServerSettings  # noqa: E402

API = "/api/v1"


@pytest.fixture
def root(tmp_path: Path, photo_dir: Path) -> Path:
    return photo_root(tmp_path, photo_dir)


# -- 1. DNS rebinding: the Host allow-list ----------------------------------------------------------


def test_a_rebound_host_name_gets_no_answer(tmp_path: Path, root: Path) -> None:
    """A page on evil.example that resolves to 127.0.0.1 sends Host and Origin of its own name:
    both look 'same origin', so only the Host allow-list (the default on loopback) stops it."""
    data = (root / "photos" / "coffee.jpg").read_bytes()
    with running(make_app(tmp_path, root, allowed_hosts=())) as port, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        evil = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        r = http.post(f"{API}/images/upload", files={"file": ("evil.jpg", data, "image/jpeg")}, headers=evil)
        body = assert_envelope(r, 400, "HostNotAllowedError")
        assert body["details"]["host"] == "evil.example"
        r = http.delete(f"{API}/duplicates/remove-duplicates", params={"dry_run": "false"}, headers=evil)
        assert_envelope(r, 400, "HostNotAllowedError")
        assert_envelope(http.get(f"{API}/images/", headers=evil), 400, "HostNotAllowedError")
        for name in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}"):
            assert http.get(f"{API}/images/", headers={"Host": name}).status_code == 200, name
        # the scheme is part of the origin: an https page of this host is another origin
        r = http.post(f"{API}/models/preload", headers={"Origin": f"https://127.0.0.1:{port}"})
        assert_envelope(r, 403, "OriginNotAllowedError")
        assert http.post(f"{API}/models/preload", headers={"Origin": f"http://127.0.0.1:{port}"}).status_code == 200
    assert not (root / "uploads").exists()


def test_allowed_hosts_setting_and_defaults() -> None:
    from imgctx.server.security import allowed_hosts, host_name

    loopback = allowed_hosts(ServerSettings.from_values())
    assert loopback == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts(ServerSettings.from_values(host="::1")) == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts(ServerSettings.from_values(host="192.168.1.5")) == {"192.168.1.5"}
    assert allowed_hosts(ServerSettings.from_values(host="0.0.0.0")) is None  # names unknown: any
    assert allowed_hosts(ServerSettings.from_values(allowed_hosts="photos.lan, Other.example")) == {
        "photos.lan", "other.example"}
    assert allowed_hosts(ServerSettings.from_values(host="0.0.0.0", allowed_hosts=["*"])) is None
    assert host_name("Photos.LAN.:8000") == "photos.lan"
    assert host_name("[::1]:80") == "[::1]"


def test_a_deployment_names_its_hosts(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, allowed_hosts=["photos.lan"]), base_url="http://photos.lan") as c:
        assert c.get(f"{API}/images/").status_code == 200
        assert_envelope(c.get(f"{API}/images/", headers={"Host": "127.0.0.1"}), 400, "HostNotAllowedError")
        with pytest.raises(WebSocketDisconnect) as refused, \
                c.websocket_connect("/ws", headers={"Host": "evil.example"}):
            pass
        assert refused.value.code == 1008


# -- 3. memory before authentication: bodies capped, the key checked first ------------------------


def _post_head(path: str, port: int, length: int | None, extra: bytes = b"") -> bytes:
    size = b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
    return (b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n%s%s\r\n"
            % (path.encode(), port, size, extra))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_a_large_json_body_is_refused_before_it_is_read(tmp_path: Path, root: Path) -> None:
    """Only the headers are sent: a server that read the body first would wait for 64 MiB and
    never answer (the socket times out); one that counts answers 413 at once."""
    with running(make_app(tmp_path, root, max_body_bytes=4096)) as port:
        status, body = raw_request(port, _post_head(f"{API}/images/process", port, 64 * 1024 * 1024))
        assert status == 413 and body["error"] == "BodyTooLargeError", body
        assert body["details"]["limit"] == 4096 and "4096-byte limit" in body["message"]
        # chunked: refused as soon as the bytes passed the limit, the rest never sent
        status, body = raw_request(port, _post_head(f"{API}/duplicates/check", port, None),
                                   _chunk(b'{"directory_path": "' + b"a" * 8192))
        assert status == 413 and body["error"] == "BodyTooLargeError", body
        # a body under the limit goes through
        r = httpx.post(f"http://127.0.0.1:{port}{API}/images/process", json={"image_path": "photos/coffee.jpg"},
                       timeout=30)
        assert r.status_code == 200, r.text


def test_the_api_key_is_checked_before_any_body(tmp_path: Path, root: Path) -> None:
    with running(make_app(tmp_path, root, api_key="k3y", max_body_bytes=1 << 30)) as port:
        status, body = raw_request(port, _post_head(f"{API}/images/process", port, 256 * 1024 * 1024))
        assert status == 401 and body["error"] == "AuthenticationError", body
        status, body = raw_request(port, _post_head(f"{API}/images/upload", port, 10 * 1024 * 1024))
        assert status == 401, body


# -- 10. smaller items ---------------------------------------------------------------------------


def test_with_a_key_only_health_is_open(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, api_key="k3y")) as c:
        assert c.get(f"{API}/health").status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", f"{API}/config"):
            assert_envelope(c.get(path), 401, "AuthenticationError")
        assert c.get("/openapi.json", headers={"X-API-Key": "k3y"}).status_code == 200


def test_the_413_message_shows_the_configured_upload_limit(tmp_path: Path, root: Path) -> None:
    with running(make_app(tmp_path, root, max_upload_bytes=1000)) as port:
        head = (b"POST /api/v1/images/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n"
                b"Content-Type: multipart/form-data; boundary=B\r\n\r\n" % (10 * 1024 * 1024))
        status, body = raw_request(port, head)
    assert status == 413 and body["error"] == "UploadTooLargeError"
    assert body["details"]["limit"] == 1000 and "1000-byte limit" in body["message"], body
    assert json.dumps(1000 + 64 * 1024) not in body["message"]


# -- 2. no delete outside the roots through a swapped folder -------------------------------------


def _swap_for_link(folder: Path, target: Path) -> None:
    """Replace ``folder`` by a symbolic link to ``target`` (what an attacker inside a root can do)."""
    folder.rename(folder.with_name(folder.name + ".old"))
    folder.symlink_to(target, target_is_directory=True)


def test_delete_file_rechecks_under_the_write_lock(tmp_path: Path, root: Path) -> None:
    """Deterministic race: the request passes the first check, then waits for the write lock
    (held by the test); the folder is swapped for a link to the outside meanwhile. The file
    outside must survive, whatever the timing."""
    import threading

    from server_support import wait_for

    sub = root / "photos" / "sub"
    sub.mkdir()
    (root / "photos" / "coffee.jpg").rename(sub / "coffee.jpg")
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "coffee.jpg"
    victim.write_bytes(b"not yours")
    app = make_app(tmp_path, root)
    state = app.state.imgctx
    with TestClient(app) as c:
        image_id = c.post(f"{API}/images/process", json={"image_path": "photos/sub/coffee.jpg"}).json()["image_id"]
        release = threading.Event()
        c.portal.start_task_soon(state.write, release.wait, 30)  # the write lock, held
        wait_for(lambda: state.write_limiter.borrowed_tokens == 1)
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(c.delete(f"{API}/images/{image_id}", params={"delete_file": "true"})))
        request.start()
        wait_for(lambda: state.write_limiter.statistics().tasks_waiting == 1)
        _swap_for_link(sub, outside)
        release.set()
        request.join(timeout=30)
        assert not request.is_alive()
        assert_envelope(answers[0], 403, "PathNotAllowedError")
        assert c.get(f"{API}/images/info/{image_id}").status_code == 200  # the record stays too
    assert victim.read_bytes() == b"not yours"


def test_delete_file_never_follows_a_folder_link(tmp_path: Path) -> None:
    from imgctx import FileOutsideRootsError, delete_file

    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "x.jpg").write_bytes(b"x")
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "x.jpg").write_bytes(b"keep")
    assert delete_file(root / "a" / "b" / "x.jpg", within=[root]) is True
    assert delete_file(root / "a" / "b" / "x.jpg", within=[root]) is False  # already gone
    _swap_for_link(root / "a", outside)
    with pytest.raises(FileOutsideRootsError):
        delete_file(root / "a" / "b" / "x.jpg", within=[root])
    assert (outside / "b" / "x.jpg").read_bytes() == b"keep"
    with pytest.raises(FileOutsideRootsError):
        delete_file(outside / "b" / "x.jpg", within=[root])
    # a link as the file itself: the link goes, never its target
    (root / "c").mkdir()
    (root / "c" / "link.jpg").symlink_to(outside / "b" / "x.jpg")
    assert delete_file(root / "c" / "link.jpg", within=[root]) is True
    assert (outside / "b" / "x.jpg").read_bytes() == b"keep"


def _store_that_swaps_on_delete(db: Path, swap: list[tuple[Path, Path]]):  # noqa: ANN202
    """The real faiss store, which swaps a folder for a link just before it deletes records: the
    moment between the server's check of the files and their deletion, made certain."""
    from imgctx._backends.faiss_store import FaissStore

    class SwapOnDelete(FaissStore):
        def delete(self, record_ids):  # noqa: ANN001, ANN202
            while swap:
                _swap_for_link(*swap.pop())
            return super().delete(record_ids)

    return SwapOnDelete(db)


def test_remove_duplicates_never_deletes_through_a_swapped_folder(tmp_path: Path, root: Path) -> None:
    from imgctx import Extractor
    from imgctx.testing import settings_for_tests

    sub = root / "photos" / "sub"
    sub.mkdir()
    (sub / "copy.jpg").write_bytes((root / "photos" / "coffee.jpg").read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "copy.jpg"
    victim.write_bytes(b"not yours")
    swap: list[tuple[Path, Path]] = []
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings, store=_store_that_swaps_on_delete(tmp_path / "db", swap)) as ex, \
            TestClient(make_app(tmp_path, root, extractor=ex)) as c:
        for name in ("photos/coffee.jpg", "photos/sub/copy.jpg"):
            assert c.post(f"{API}/images/process", json={"image_path": name}).status_code == 200
        swap.append((sub, outside))
        r = c.delete(f"{API}/duplicates/remove-duplicates",
                     params={"dry_run": "false", "delete_files": "true", "similarity_threshold": 0.9})
        assert r.status_code == 200, r.text
        body = r.json()
    assert victim.read_bytes() == b"not yours"
    assert body["files_deleted"] == []
    assert [f["path"] for f in body["failed_files"]] == [str(sub / "copy.jpg")], body
    assert body["failed_files"][0]["reason"].startswith("not deleted: "), body


def test_remove_duplicates_skips_a_member_linked_outside(tmp_path: Path, root: Path) -> None:
    """A stale record whose file became a link to the outside costs that member only."""
    sub = root / "photos" / "sub"
    sub.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (sub / name).write_bytes((root / "photos" / "coffee.jpg").read_bytes())
    outside = tmp_path / "outside"
    outside.mkdir()
    with TestClient(make_app(tmp_path, root)) as c:
        for name in ("photos/coffee.jpg", "photos/sub/a.jpg", "photos/sub/b.jpg"):
            assert c.post(f"{API}/images/process", json={"image_path": name}).status_code == 200
        (outside / "a.jpg").write_bytes((sub / "a.jpg").read_bytes())
        (sub / "a.jpg").unlink()
        (sub / "a.jpg").symlink_to(outside / "a.jpg")  # the record of a.jpg is stale now
        r = c.delete(f"{API}/duplicates/remove-duplicates",
                     params={"dry_run": "false", "delete_files": "true", "similarity_threshold": 0.9})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["files_deleted"] == [str(sub / "b.jpg")]
    assert not (sub / "b.jpg").exists()
    assert (outside / "a.jpg").exists()
    reasons = {f["path"]: f["reason"] for f in body["failed_files"]}
    assert str(sub / "a.jpg") in reasons, body


def test_delete_file_reports_a_missing_file_as_not_deleted(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root)) as c:
        image_id = c.post(f"{API}/images/process", json={"image_path": "photos/coffee.jpg"}).json()["image_id"]
        (root / "photos" / "coffee.jpg").unlink()
        body = c.delete(f"{API}/images/{image_id}", params={"delete_file": "true"}).json()
    assert body["file_deleted"] is False and "already missing" in body["message"]


# -- 5. a deep or long upload_dir --------------------------------------------------------------------


def test_a_deep_upload_dir_is_a_400_without_log_spam(tmp_path: Path, root: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    data = (root / "photos" / "coffee.jpg").read_bytes()
    with TestClient(make_app(tmp_path, root)) as c:
        for upload_dir in ("d/" * 2000, "d/" * 200, "x" * 5000):
            caplog.clear()
            r = c.post(f"{API}/images/upload", files={"file": ("a.jpg", data, "image/jpeg")},
                       data={"upload_dir": upload_dir})
            assert r.status_code in (400, 422), r.text
            assert_envelope(r, r.status_code)
            assert len(caplog.text) < 2000, caplog.text[:500]
    assert not (root / "d").exists()


# -- 8. a binary WebSocket frame ---------------------------------------------------------------------


def test_a_binary_frame_gets_an_error_and_the_connection_stays(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root)) as c, c.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "connected"
        ws.send_bytes(b"\x00\x01binary")
        reply = ws.receive_json()
        assert reply["type"] == "error" and "binary" in reply["message"]
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"


# -- 9. the API key never reaches the logs ---------------------------------------------------------


def test_the_api_key_is_redacted_from_the_access_log(tmp_path: Path, root: Path) -> None:
    import logging

    import uvicorn
    from server_support import free_port, wait_for
    from websockets.sync.client import connect

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    port = free_port()
    config = uvicorn.Config(make_app(tmp_path, root, api_key="sup3r-s3cret"), host="127.0.0.1", port=port,
                            log_level="info", lifespan="on")  # uvicorn's own logging set-up, access log on
    server = uvicorn.Server(config)
    import threading

    thread = threading.Thread(target=server.run, daemon=True)
    handler = Collect()
    loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
    thread.start()
    try:
        wait_for(lambda: server.started, timeout=30)
        for logger in loggers:
            logger.addHandler(handler)
        base = f"127.0.0.1:{port}"
        with connect(f"ws://{base}/ws?api_key=sup3r-s3cret", open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "connected"
        r = httpx.get(f"http://{base}{API}/images/", params={"api_key": "sup3r-s3cret"}, timeout=10)
        assert r.status_code == 401
        wait_for(lambda: len(lines) >= 2, timeout=10)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        for logger in loggers:
            logger.removeHandler(handler)
    text = "\n".join(lines)
    assert "api_key=[redacted]" in text, text
    assert "sup3r-s3cret" not in text, text


# -- 10. smaller items ---------------------------------------------------------------------------------


def test_a_refused_websocket_is_closed_with_1008(tmp_path: Path, root: Path) -> None:
    """As documented: the handshake completes and the server closes with 1008 and a reason
    (before, the handshake itself was refused with HTTP 403)."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with running(make_app(tmp_path, root, api_key="k3y")) as port:
        for url, headers in ((f"ws://127.0.0.1:{port}/ws", {}),
                             (f"ws://127.0.0.1:{port}/ws?api_key=k3y", {"Origin": "http://evil.example"})):
            with connect(url, additional_headers=headers, open_timeout=10) as ws, \
                    pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, url


def test_overwrite_onto_a_folder_is_a_409(tmp_path: Path, root: Path) -> None:
    data = (root / "photos" / "coffee.jpg").read_bytes()
    (root / "uploads" / "taken.jpg").mkdir(parents=True)
    with TestClient(make_app(tmp_path, root)) as c:
        r = c.post(f"{API}/images/upload", files={"file": ("taken.jpg", data, "image/jpeg")},
                   data={"overwrite": "true"})
    assert_envelope(r, 409, "UploadExistsError")
    assert (root / "uploads" / "taken.jpg").is_dir()


def test_upload_errors_name_the_clients_file(tmp_path: Path, root: Path) -> None:
    truncated = (root / "photos" / "coffee.jpg").read_bytes()[:300]
    with TestClient(make_app(tmp_path, root)) as c:
        r = c.post(f"{API}/images/upload", files={"file": ("my photo.jpg", truncated, "image/jpeg")})
    body = assert_envelope(r, 400, "InvalidImageError")
    assert ".upload-" not in r.text and ".part" not in r.text
    assert body["message"].startswith("my_photo.jpg: ") and body["details"]["path"] == "my_photo.jpg"


def test_a_task_stopped_by_shutdown_reads_like_one_stopped_by_a_crash(tmp_path: Path, root: Path) -> None:
    """SIGTERM runs the app's shutdown: the task is 'interrupted' with the same 'Interrupted: '
    prefix that a restart after SIGKILL gives."""
    from server_support import wait_for

    from imgctx import Extractor
    from imgctx.testing import TinyImageEmbedder, settings_for_tests

    settings = settings_for_tests(tmp_path / "db", preset="tiny", batch_size=1)
    with Extractor(settings=settings, image_embedder=TinyImageEmbedder(delay=0.3)) as ex:
        with TestClient(make_app(tmp_path, root, extractor=ex)) as c:
            task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
            wait_for(lambda: c.get(f"{API}/directories/task/{task_id}").json()["progress"] > 0)
        with TestClient(make_app(tmp_path, root, extractor=ex)) as c:
            task = c.get(f"{API}/directories/task/{task_id}").json()
    assert task["status"] == "interrupted", task
    assert task["message"].startswith("Interrupted: Processing image "), task


# -- 6. a full disk --------------------------------------------------------------------------------


def _fill(conn: Any, insert: str) -> None:
    """Make a real SQLite database full: cap it at its current size (``max_page_count``, the
    limit SQLite enforces exactly as a full disk, with SQLITE_FULL), then fill its free space."""
    import sqlite3

    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    for _ in range(10_000):
        try:
            conn.execute(insert)
        except sqlite3.OperationalError as exc:
            assert "full" in str(exc)
            return
    raise AssertionError("the database never filled up")


def test_a_full_disk_says_so_and_every_task_ends(tmp_path: Path, root: Path) -> None:
    from server_support import wait_for

    app = make_app(tmp_path, root)
    state = app.state.imgctx
    with TestClient(app) as c:
        assert c.post(f"{API}/images/process", json={"image_path": "photos/coffee.jpg"}).status_code == 200
        _fill(state.extractor.store._conn,
              "INSERT INTO meta(key, value) VALUES ('filler' || hex(randomblob(16)), hex(randomblob(300)))")
        r = c.post(f"{API}/directories/process", json={"directory_path": "photos"})
        body = assert_envelope(r, 507, "DiskFullError")
        assert "disk full" in body["message"] and "rollback" not in body["message"], body
        # a background task that meets the full disk fails, saying why
        task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
        task = wait_for(lambda: (t := c.get(f"{API}/directories/task/{task_id}").json())["status"]
                        not in ("queued", "processing") and t)
        assert task["status"] == "failed" and "disk full" in task["error"], task
        # the task database full too: no task is created, none is left queued
        _fill(state.task_manager.store._conn,
              "INSERT INTO tasks VALUES (hex(randomblob(16)), 'completed', 100, hex(randomblob(400)), NULL, NULL,"
              " '2026', '2026', NULL)")
        r = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"})
        body = assert_envelope(r, 507, "DiskFullError")
        assert "disk full" in body["message"]
        statuses = {t["status"] for t in c.get(f"{API}/directories/tasks").json()}
        assert statuses <= {"completed", "failed"}, statuses


# -- 4. decodes bounded by a memory budget -----------------------------------------------------------


def _peak_rss(pid: int) -> int:
    """The process's resident-memory high-water mark (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_concurrent_decodes_stay_within_the_memory_budget(tmp_path: Path, root: Path) -> None:
    """Six uploads at once of a small PNG that decodes to 75 MB each. With a budget of about one
    decode they run one after another, and the server's peak memory barely moves after a first
    upload; without one they decode together and the peak grows by several images."""
    import os
    import subprocess
    import sys
    import threading

    from PIL import Image
    from server_support import free_port, wait_for

    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 5000), (10, 20, 30)).save(big)
    data = big.read_bytes()
    estimate = 5000 * 5000 * 3 + len(data)
    port = free_port()
    env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_PORT": str(port), "IMGCTX_LOAD_PLUGINS": "imgctx.testing",
           "IMGCTX_WORKER_THREADS": "6", "IMGCTX_DECODE_MEMORY_BYTES": str(estimate + estimate // 4)}
    proc = subprocess.Popen([sys.executable, "-m", "imgctx.server", "--preset", "tiny", "--db", str(tmp_path / "db")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}{API}"

    def up() -> bool:
        assert proc.poll() is None
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def upload(name: str, statuses: list[int]) -> None:
        r = httpx.post(f"{base}/images/upload", files={"file": (name, data, "image/png")},
                       data={"process_immediately": "false"}, timeout=120)
        statuses.append(r.status_code)

    try:
        wait_for(up, timeout=60, every=0.2)
        warm: list[int] = []
        upload("warm.png", warm)
        assert warm == [201]
        before = _peak_rss(proc.pid)
        statuses: list[int] = []
        threads = [threading.Thread(target=upload, args=(f"b{i}.png", statuses)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        after = _peak_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert statuses == [201] * 6
    assert after - before < estimate, f"peak RSS grew by {(after - before) >> 20} MiB"


def test_an_image_over_the_whole_budget_is_a_413(tmp_path: Path, root: Path) -> None:
    data = (root / "photos" / "coffee.jpg").read_bytes()
    with TestClient(make_app(tmp_path, root, decode_memory_bytes=100_000)) as c:
        r = c.post(f"{API}/images/upload", files={"file": ("cup.jpg", data, "image/jpeg")})
        body = assert_envelope(r, 413, "ImageTooLargeError")
        assert body["message"].startswith("cup.jpg: ") and "decode_memory_bytes" in body["message"]
        r = c.post(f"{API}/images/process", json={"image_path": "photos/coffee.jpg"})
        assert_envelope(r, 413, "ImageTooLargeError")
        assert c.app.state.imgctx.decodes.in_use == 0
    assert not (root / "uploads" / "cup.jpg").exists()


# -- also: the docs pages work offline; imgctx serve says where it listens ---------------------------


def test_docs_pages_load_their_assets_from_the_server(tmp_path: Path, root: Path) -> None:
    import re

    with TestClient(make_app(tmp_path, root)) as c:
        for page, assets in (("/docs", 2), ("/redoc", 1)):
            html = c.get(page).text
            urls = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert urls and not [u for u in urls if "://" in u], urls  # nothing from another site
            scripts = [u for u in urls if u.endswith((".js", ".css"))]
            assert len(scripts) >= assets, urls
            for url in scripts:
                r = c.get(url)
                assert r.status_code == 200 and len(r.content) > 100_000, url


def test_serve_prints_where_it_listens_and_when_it_stops(tmp_path: Path, root: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from server_support import free_port, wait_for

    port = free_port()
    env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
    proc = subprocess.Popen([sys.executable, "-m", "imgctx", "--db", str(tmp_path / "db"), "--preset", "tiny",
                             "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def up() -> bool:
        assert proc.poll() is None
        try:
            return httpx.get(f"http://127.0.0.1:{port}{API}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60, every=0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"listening on http://127.0.0.1:{port}" in out, out
    assert f"faiss in {tmp_path / 'db'}" in out and "preset: tiny" in out, out
    assert f"allowed roots: {root.resolve()}" in out and "API key: not set" in out, out
    assert "answers to hosts: 127.0.0.1, [::1], localhost" in out, out
    assert out.rstrip().endswith("imgctx server stopped"), out


def test_the_budget_makes_decodes_wait_then_gives_up() -> None:
    import threading

    from imgctx.server import DecodeBusyError
    from imgctx.server.budget import DecodeBudget

    budget = DecodeBudget(100, max_pixels=10**8, wait_seconds=0.2)
    with budget.reserve(80):
        with pytest.raises(DecodeBusyError):
            with budget.reserve(50):
                pass
        started = threading.Event()
        done = threading.Event()

        def second() -> None:
            started.set()
            with budget.reserve(50):
                done.set()

        budget.wait_seconds = 30
        waiter = threading.Thread(target=second)
        waiter.start()
        started.wait(10)
        assert not done.wait(0.2)  # waits while the first holds 80 of 100
    waiter.join(10)
    assert done.is_set() and budget.in_use == 0 and budget.peak == 80


@pytest.mark.slow
def test_sigterm_mid_task_records_it_as_interrupted_with_the_prefix(tmp_path: Path) -> None:
    """The real signal: a server process stopped by SIGTERM during a task."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    from PIL import Image
    from server_support import free_port, wait_for

    root = tmp_path / "root"
    (root / "many").mkdir(parents=True)
    for i in range(400):
        Image.new("RGB", (40, 30), (i % 256, (7 * i) % 256, 90)).save(root / "many" / f"{i:04}.png")
    port = free_port()
    env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_BATCH_SIZE": "2", "IMGCTX_PORT": str(port),
           "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
    proc = subprocess.Popen([sys.executable, "-m", "imgctx.server", "--preset", "tiny", "--db", str(tmp_path / "db")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base = f"http://127.0.0.1:{port}{API}"

    def up() -> bool:
        assert proc.poll() is None
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=60, every=0.2)
        task_id = httpx.post(f"{base}/directories/process-async", json={"directory_path": "many"},
                             timeout=10).json()["task_id"]
        wait_for(lambda: httpx.get(f"{base}/directories/task/{task_id}", timeout=10).json()["progress"] > 0)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.rstrip().endswith("imgctx server stopped"), out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with sqlite3.connect(tmp_path / "db" / "server_tasks.sqlite3") as conn:
        status, message = conn.execute("SELECT status, message FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
    assert status == "interrupted" and message.startswith("Interrupted: Processing image "), (status, message)
