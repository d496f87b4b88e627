"""The REST API against the contract, through httpx (Starlette's TestClient) on the real app:
tiny models, the real faiss store and SQLite files, real photos."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("psutil")

from fastapi.testclient import TestClient  # noqa: E402
from server_support import assert_envelope, make_app, photo_root, wait_for  # noqa: E402

from imgctx import Extractor, ServerSettings  # noqa: E402
from imgctx.testing import TinyImageEmbedder, settings_for_tests  # noqa: E402

API = "/api/v1"


@pytest.fixture
def root(tmp_path: Path, photo_dir: Path) -> Path:
    return photo_root(tmp_path, photo_dir)


@pytest.fixture
def client(tmp_path: Path, root: Path) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path, root)) as c:
        yield c


def _process(client: TestClient, path: Path | str, **extra: Any) -> dict[str, Any]:
    r = client.post(f"{API}/images/process", json={"image_path": str(path), **extra})
    assert r.status_code == 200, r.text
    return r.json()


# -- health & status -----------------------------------------------------------------------------


def test_health_reports_store_and_models(client: TestClient, root: Path) -> None:
    _process(client, root / "photos" / "chelsea.jpg")
    body = client.get(f"{API}/health").json()
    assert body["status"] == "healthy"
    assert body["database_connected"] is True
    assert body["models_loaded"] is True  # the tiny models need no loading
    assert body["uptime"] >= 0
    assert body["stats"]["total_images"] == 1
    assert body["stats"]["collection_name"] == "image_contexts"
    assert body["stats"]["db_path"].endswith("db")


def test_status_has_cpu_memory_and_disk(client: TestClient) -> None:
    body = client.get(f"{API}/status").json()
    system = body["system"]
    assert 0 <= system["cpu_percent"] <= 100 * (system["cpu_count"] or 1)
    assert system["memory"]["total"] > system["memory"]["available"] > 0
    assert system["disk"]["total"] >= system["disk"]["free"] > 0
    assert system["process"]["memory_rss"] > 0
    assert body["database"]["connected"] is True


def test_config_never_shows_the_api_key(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, api_key="s3cret-value")) as c:
        r = c.get(f"{API}/config", headers={"X-API-Key": "s3cret-value"})
    assert r.status_code == 200
    assert "s3cret-value" not in r.text
    body = r.json()
    assert body["server"]["api_key_set"] is True
    assert body["settings"]["preset"] == "tiny"
    assert body["server"]["allowed_roots"] == [str(root.resolve())]


def test_metrics_count_requests(client: TestClient) -> None:
    client.get(f"{API}/health")
    client.get(f"{API}/images/info/nope")
    body = client.get(f"{API}/metrics").json()
    assert body["requests"]["total"] >= 2
    assert body["requests"]["by_status"]["404"] >= 1
    assert body["requests"]["errors"] >= 1
    assert body["images"]["total"] == 0
    assert "websockets" in body and "tasks" in body


def test_info_lists_every_contract_endpoint(client: TestClient) -> None:
    body = client.get(f"{API}/info").json()
    expected = {
        "GET /api/v1/health", "GET /api/v1/status", "GET /api/v1/config", "GET /api/v1/metrics",
        "GET /api/v1/info", "GET /api/v1/models/status", "POST /api/v1/models/preload",
        "POST /api/v1/images/process", "POST /api/v1/images/upload", "GET /api/v1/images/info/{image_id}",
        "GET /api/v1/images/download/{image_id}", "GET /api/v1/images/", "DELETE /api/v1/images/{image_id}",
        "POST /api/v1/directories/process", "POST /api/v1/directories/process-async",
        "GET /api/v1/directories/scan", "GET /api/v1/directories/task/{task_id}",
        "GET /api/v1/directories/tasks", "GET /ws/stats", "POST /api/v1/duplicates/check",
        "GET /api/v1/duplicates/check-image", "GET /api/v1/duplicates/check-directory",
        "POST /api/v1/duplicates/compare", "DELETE /api/v1/duplicates/remove-duplicates",
    }
    assert expected <= set(body["endpoints"])
    assert {"/ws", "/ws/processing", "/ws/search"} <= set(body["websockets"])
    assert body["models"]["image_embedder"] == "tiny-image"


def test_swagger_redoc_and_openapi(client: TestClient) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    assert "redoc" in client.get("/redoc").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/images/process" in paths and "/api/v1/directories/process-async" in paths


# -- models ------------------------------------------------------------------------------------


def test_models_status_and_preload(client: TestClient) -> None:
    status = client.get(f"{API}/models/status").json()
    contract = {"blip_processor", "blip_model", "clip_processor", "clip_model", "sentence_transformer"}
    assert set(status["models"]) == {"captioner", "image_embedder", "text_embedder", "tagger"} | contract
    assert status["models"]["clip_model"] == status["models"]["image_embedder"]
    assert status["device"] == "cpu"
    assert status["details"]["text_embedder"]["name"] == "tiny-text"
    pre = client.post(f"{API}/models/preload").json()
    assert pre["success"] is True
    assert set(pre["timings"]) == {"captioner", "image_embedder", "text_embedder", "tagger", "total"} | contract
    assert pre["timings"]["blip_processor"] == 0.0
    assert pre["timings"]["blip_model"] == pre["timings"]["captioner"]
    assert pre["timings"]["total"] >= 0


@pytest.mark.models
def test_models_status_then_preload_with_the_offline_preset(tmp_path: Path, root: Path) -> None:
    """Real weights: nothing is loaded until preload, which reports a time for each model."""
    pytest.importorskip("torch")
    from imgctx.server import create_app

    app = create_app(settings_for_tests(tmp_path / "db", preset="offline"),
                     server_settings=ServerSettings.from_values(allowed_roots=[root]))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        before = c.get(f"{API}/models/status").json()
        assert before["models"]["image_embedder"] is False
        pre = c.post(f"{API}/models/preload").json()
        assert pre["timings"]["total"] > 0
        assert pre["timings"]["clip_model"] == pre["timings"]["image_embedder"]
        after = c.get(f"{API}/models/status").json()
        assert all(after["models"].values()) and after["models"]["sentence_transformer"] is True
        assert after["details"]["image_embedder"]["load_time"] > 0


# -- images: process ---------------------------------------------------------------------------


def test_process_image_returns_the_contract_fields(client: TestClient, root: Path) -> None:
    path = root / "photos" / "chelsea.jpg"
    body = _process(client, path)
    assert body["success"] is True
    assert body["message"] == "Image processed successfully"
    assert body["was_duplicate"] is False
    info = body["image_info"]
    assert info["id"] == body["image_id"]
    assert info["path"] == str(path.resolve())
    assert info["filename"] == "chelsea.jpg"
    assert info["format"] == "JPEG"
    assert info["size"] == [451, 300]
    assert info["file_size"] == path.stat().st_size
    assert info["caption"] and info["objects"]
    assert body["processing_time"] >= 0
    again = _process(client, path)
    assert again["was_duplicate"] is True and again["skipped"] is True
    forced = _process(client, path, force_reprocess=True)
    assert forced["skipped"] is False


def test_process_a_copy_is_a_duplicate(client: TestClient, root: Path) -> None:
    first = _process(client, root / "photos" / "coffee.jpg")
    shutil.copy(root / "photos" / "coffee.jpg", root / "copy.jpg")
    copy = _process(client, root / "copy.jpg")
    assert copy["was_duplicate"] is True
    assert copy["duplicate_of"] == first["image_id"]


def test_relative_image_path_is_inside_the_first_root(client: TestClient, root: Path) -> None:
    body = _process(client, "photos/rocket.jpg")
    assert body["image_info"]["path"] == str((root / "photos" / "rocket.jpg").resolve())


def test_process_missing_file_is_404(client: TestClient, root: Path) -> None:
    r = client.post(f"{API}/images/process", json={"image_path": str(root / "nope.jpg")})
    body = assert_envelope(r, 404, "ImageNotFoundError")
    assert "nope.jpg" in body["message"]


def test_process_corrupt_file_is_400(client: TestClient, root: Path) -> None:
    bad = root / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 100)
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": str(bad)}), 400, "InvalidImageError")
    text = root / "notes.jpg"
    text.write_text("hello")
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": str(text)}), 400, "InvalidImageError")


@pytest.mark.parametrize("escape", ["/etc/hostname", "../outside.jpg", "photos/../../outside.jpg"])
def test_process_outside_the_roots_is_403(client: TestClient, root: Path, escape: str) -> None:
    shutil.copy(root / "photos" / "chelsea.jpg", root.parent / "outside.jpg")
    r = client.post(f"{API}/images/process", json={"image_path": escape})
    body = assert_envelope(r, 403, "PathNotAllowedError")
    assert "allowed roots" in body["message"]
    assert client.get(f"{API}/health").json()["stats"]["total_images"] == 0


def test_symlink_out_of_the_root_is_403(client: TestClient, root: Path) -> None:
    outside = root.parent / "secret.jpg"
    shutil.copy(root / "photos" / "chelsea.jpg", outside)
    os.symlink(outside, root / "link.jpg")
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": str(root / "link.jpg")}),
                    403, "PathNotAllowedError")
    os.symlink(root.parent, root / "up")
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": "up/secret.jpg"}),
                    403, "PathNotAllowedError")


def test_symlink_inside_the_root_is_allowed(client: TestClient, root: Path) -> None:
    os.symlink(root / "photos" / "chelsea.jpg", root / "cat.jpg")
    assert _process(client, root / "cat.jpg")["image_info"]["filename"] == "chelsea.jpg"


def test_malformed_requests_are_422_or_400(client: TestClient) -> None:
    body = assert_envelope(client.post(f"{API}/images/process", json={}), 422, "ValidationError")
    assert body["details"]["errors"][0]["loc"] == ["body", "image_path"]
    assert_envelope(client.post(f"{API}/images/process", content=b"{not json",
                                headers={"content-type": "application/json"}), 422, "ValidationError")
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": 5}), 422)
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": "a\x00b"}), 422, "ValidationError")
    assert_envelope(client.post(f"{API}/images/process", json={"image_path": "  "}), 422, "ValidationError")
    long_name = assert_envelope(client.get(f"{API}/directories/scan", params={"directory_path": "a" * 300}), 400)
    assert long_name["error"] == "OSError" and "too long" in long_name["message"]
    assert_envelope(client.get(f"{API}/images/?limit=0"), 422, "ValidationError")
    assert_envelope(client.get(f"{API}/images/?min_score=2"), 422, "ValidationError")
    assert_envelope(client.get(f"{API}/no/such/route"), 404, "NotFoundError")
    assert_envelope(client.put(f"{API}/health"), 405, "MethodNotAllowedError")


def test_unexpected_error_is_a_500_without_internals(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(tmp_path, root)
    with TestClient(app, raise_server_exceptions=False) as c:
        def broken(record_id: str) -> None:
            raise RuntimeError("internal detail /srv/secret/path")

        monkeypatch.setattr(app.state.imgctx._extractor, "get", broken)
        r = c.get(f"{API}/images/info/abc")
    body = assert_envelope(r, 500, "InternalServerError")
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert body["message"].startswith("An unexpected error occurred")


# -- images: upload -----------------------------------------------------------------------------


def _upload(client: TestClient, data: bytes, name: str = "photo.jpg", **form: Any) -> Any:
    fields = {k: str(v).lower() if isinstance(v, bool) else v for k, v in form.items()}
    return client.post(f"{API}/images/upload", files={"file": (name, data, "image/jpeg")}, data=fields)


def test_upload_processes_and_refuses_overwrite(client: TestClient, root: Path) -> None:
    data = (root / "photos" / "astronaut.jpg").read_bytes()
    r = _upload(client, data, "astronaut.jpg")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["success"] is True
    assert body["filename"] == "astronaut.jpg"
    assert body["file_path"] == "uploads/astronaut.jpg"
    assert body["file_size"] == len(data)
    assert body["image_id"] and body["message"] == "Image uploaded and processed successfully"
    assert (root / "uploads" / "astronaut.jpg").read_bytes() == data
    assert client.get(f"{API}/images/info/{body['image_id']}").status_code == 200

    other = (root / "photos" / "rocket.jpg").read_bytes()
    assert_envelope(_upload(client, other, "astronaut.jpg"), 409, "UploadExistsError")
    assert (root / "uploads" / "astronaut.jpg").read_bytes() == data  # lost nothing
    r = _upload(client, other, "astronaut.jpg", overwrite=True)
    assert r.status_code == 201
    assert (root / "uploads" / "astronaut.jpg").read_bytes() == other
    assert sorted(p.name for p in (root / "uploads").iterdir()) == ["astronaut.jpg"]


def test_upload_without_processing(client: TestClient, root: Path) -> None:
    r = _upload(client, (root / "photos" / "coffee.jpg").read_bytes(), "c.jpg", process_immediately=False,
                upload_dir="incoming/today")
    assert r.status_code == 201
    body = r.json()
    assert body["image_id"] is None and body["message"] == "Image uploaded successfully"
    assert body["file_path"] == "incoming/today/c.jpg"
    assert client.get(f"{API}/health").json()["stats"]["total_images"] == 0


def test_upload_sanitises_the_name_and_fixes_the_suffix(client: TestClient, root: Path) -> None:
    data = (root / "photos" / "coffee.jpg").read_bytes()
    r = _upload(client, data, "../../etc/évil name?.php")
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "evil_name.jpg"
    assert (root / "uploads" / "evil_name.jpg").exists()
    assert not (root.parent / "etc").exists()
    r = _upload(client, data, ".hidden")
    assert r.json()["filename"] == "hidden.jpg"


def test_upload_refuses_non_images_and_oversized_files(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, max_upload_bytes=30_000)) as c:
        assert_envelope(_upload(c, b"#!/bin/sh\necho hi\n", "x.jpg"), 400, "InvalidImageError")
        assert_envelope(_upload(c, b"", "x.jpg"), 400, "InvalidImageError")
        truncated = (root / "photos" / "chelsea.jpg").read_bytes()[:2000]
        assert_envelope(_upload(c, truncated, "t.jpg"), 400, "InvalidImageError")
        big = (root / "photos" / "astronaut.jpg").read_bytes()
        assert len(big) > 30_000
        assert_envelope(_upload(c, big, "big.jpg"), 413, "UploadTooLargeError")
        assert_envelope(_upload(c, b"x", "x.jpg", upload_dir="../elsewhere"), 403, "PathNotAllowedError")
        assert_envelope(c.post(f"{API}/images/upload", data={"overwrite": "true"}), 422, "ValidationError")
    leftovers = list((root / "uploads").iterdir())
    assert leftovers == []  # no partial or refused file is left behind


def test_upload_without_content_length_over_the_limit(tmp_path: Path, root: Path) -> None:
    """A chunked body (no Content-Length) over the limit gets 413 in the envelope, no file."""
    head = (b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n")

    def body() -> Iterator[bytes]:
        yield head + (root / "photos" / "astronaut.jpg").read_bytes()
        for _ in range(4):
            yield b"\xff" * (64 * 1024)
        yield b"\r\n--B--\r\n"

    with TestClient(make_app(tmp_path, root, max_upload_bytes=30_000)) as c:
        r = c.post(f"{API}/images/upload", content=body(),
                   headers={"Content-Type": "multipart/form-data; boundary=B"})
        assert "content-length" not in {k.lower() for k in r.request.headers}
        assert_envelope(r, 413, "UploadTooLargeError")
    assert not (root / "uploads").exists() or list((root / "uploads").iterdir()) == []


def test_upload_without_hard_links_never_overwrites(tmp_path: Path, root: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system without hard links (os.link fails, as on FAT) the upload is copied into a
    file created exclusively: it works, and an existing file is still never replaced."""
    import errno

    def no_links(src: Any, dst: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", str(src))

    monkeypatch.setattr(os, "link", no_links)
    data = (root / "photos" / "rocket.jpg").read_bytes()
    other = (root / "photos" / "coffee.jpg").read_bytes()
    with TestClient(make_app(tmp_path, root)) as c:
        r = _upload(c, data, "rocket.jpg", process_immediately=False)
        assert r.status_code == 201, r.text
        assert (root / "uploads" / "rocket.jpg").read_bytes() == data
        assert_envelope(_upload(c, other, "rocket.jpg"), 409, "UploadExistsError")
        assert (root / "uploads" / "rocket.jpg").read_bytes() == data
    assert sorted(p.name for p in (root / "uploads").iterdir()) == ["rocket.jpg"]


def test_place_without_hard_links_refuses_a_file_that_appeared(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the route's own exists-check cannot close: the target appears just before the move."""
    import errno

    from imgctx.server.errors import UploadExistsError
    from imgctx.server.routes.images import _place

    def no_links(src: Any, dst: Any, **kwargs: Any) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported", str(src))

    monkeypatch.setattr(os, "link", no_links)
    tmp, target = tmp_path / ".upload.part", tmp_path / "photo.jpg"
    tmp.write_bytes(b"new")
    target.write_bytes(b"old")
    with pytest.raises(UploadExistsError):
        _place(tmp, target, overwrite=False)
    assert target.read_bytes() == b"old" and not tmp.exists()
    tmp.write_bytes(b"new")
    target.unlink()
    _place(tmp, target, overwrite=False)
    assert target.read_bytes() == b"new" and not tmp.exists()


def test_upload_refuses_a_decompression_bomb(tmp_path: Path, root: Path) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (6000, 6000)).save(buf, "PNG")
    with TestClient(make_app(tmp_path, root, settings_changes={"max_image_pixels": 1_000_000})) as c:
        assert_envelope(_upload(c, buf.getvalue(), "bomb.png"), 413, "ImageTooLargeError")
    assert list((root / "uploads").iterdir()) == []


# -- images: info, download, list, search, delete ---------------------------------------------


def test_info_and_download(client: TestClient, root: Path) -> None:
    path = root / "photos" / "rocket.jpg"
    image_id = _process(client, path)["image_id"]
    info = client.get(f"{API}/images/info/{image_id}").json()
    assert info["id"] == image_id and len(info["content_hash"]) == 64 and info["tags"]
    r = client.get(f"{API}/images/download/{image_id}")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content == path.read_bytes()
    assert_envelope(client.get(f"{API}/images/info/unknown"), 404, "RecordNotFoundError")
    assert_envelope(client.get(f"{API}/images/download/unknown"), 404, "RecordNotFoundError")
    path.unlink()
    assert_envelope(client.get(f"{API}/images/download/{image_id}"), 404, "ImageNotFoundError")


def test_download_outside_the_roots_is_403(tmp_path: Path, root: Path, photo_dir: Path) -> None:
    """A record indexed through the library from elsewhere is not served."""
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings) as ex:
        record = ex.process(photo_dir / "coffee.jpg").record
        with TestClient(make_app(tmp_path, root, extractor=ex)) as c:
            assert_envelope(c.get(f"{API}/images/download/{record.id}"), 403, "PathNotAllowedError")
            assert_envelope(c.delete(f"{API}/images/{record.id}?delete_file=true"), 403, "PathNotAllowedError")
        assert (photo_dir / "coffee.jpg").exists()
        assert ex.get(record.id) == record


def test_list_and_filter_and_paginate(client: TestClient, root: Path) -> None:
    client.post(f"{API}/directories/process", json={"directory_path": "photos"})
    everything = client.get(f"{API}/images/").json()
    assert len(everything) == 6
    assert set(everything[0]) == {"id", "path", "filename", "size", "file_size", "format", "caption", "objects"}
    page = client.get(f"{API}/images/?limit=2&offset=2").json()
    assert [i["id"] for i in page] == [i["id"] for i in everything[2:4]]
    colour = everything[0]["objects"][0]
    tagged = client.get(f"{API}/images/", params={"objects": f"{colour},nothing-like-this"}).json()
    assert tagged and all(colour in i["objects"] for i in tagged)
    assert client.get(f"{API}/images/", params={"objects": "nothing-like-this"}).json() == []
    assert client.get(f"{API}/images", follow_redirects=True).status_code == 200


def test_search_mode(client: TestClient, root: Path) -> None:
    client.post(f"{API}/directories/process", json={"directory_path": "photos"})
    hits = client.get(f"{API}/images/", params={"query": "dark blue", "limit": 3}).json()
    assert 1 <= len(hits) <= 3
    assert all(0 <= h["score"] <= 1 and abs(h["score"] + h["distance"] - 1) < 1e-6 for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    bare = client.get(f"{API}/images/", params={"query": "dark blue", "limit": 3, "include_metadata": False}).json()
    assert [h["id"] for h in bare] == [h["id"] for h in hits]
    assert "score" not in bare[0] and "distance" not in bare[0]
    strict = client.get(f"{API}/images/", params={"query": "dark blue", "min_score": 0.99}).json()
    assert all(h["score"] >= 0.99 for h in strict)
    assert len(strict) < len(client.get(f"{API}/images/", params={"query": "dark blue"}).json())


def test_delete_record_and_file(client: TestClient, root: Path) -> None:
    a = _process(client, root / "photos" / "chelsea.jpg")["image_id"]
    b = _process(client, root / "photos" / "coffee.jpg")["image_id"]
    r = client.delete(f"{API}/images/{a}")
    assert r.status_code == 200 and r.json()["file_deleted"] is False
    assert (root / "photos" / "chelsea.jpg").exists()
    r = client.delete(f"{API}/images/{b}", params={"delete_file": True})
    assert r.json()["success"] is True and r.json()["file_deleted"] is True
    assert not (root / "photos" / "coffee.jpg").exists()
    assert client.get(f"{API}/images/").json() == []
    assert_envelope(client.delete(f"{API}/images/{a}"), 404, "RecordNotFoundError")


# -- directories ------------------------------------------------------------------------------


def test_process_directory_reports_every_file(client: TestClient, root: Path) -> None:
    (root / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    outside = root.parent / "outside.jpg"
    shutil.copy(root / "photos" / "coffee.jpg", outside)
    os.symlink(outside, root / "photos" / "sneaky.jpg")
    body = client.post(f"{API}/directories/process", json={"directory_path": str(root / "photos")}).json()
    assert body["success"] is True
    assert body["total_files"] == 8
    assert body["processed"] == 6 and body["failed"] == 2 and body["skipped"] == 0
    assert len(body["processed_ids"]) == 6
    assert sorted(Path(p).name for p in body["failed_files"]) == ["broken.jpg", "sneaky.jpg"]
    reasons = {Path(f["path"]).name: f["reason"] for f in body["failures"]}
    assert "outside the allowed roots" in reasons["sneaky.jpg"]
    assert body["message"] == "Directory processed: 6 images processed"
    again = client.post(f"{API}/directories/process", json={"directory_path": "photos"}).json()
    assert again["skipped"] == 6 and again["processed"] == 0


def test_directory_recursive_and_errors(client: TestClient, root: Path) -> None:
    (root / "photos" / "sub").mkdir()
    shutil.copy(root / "photos" / "rocket.jpg", root / "photos" / "sub" / "r2.jpg")
    flat = client.post(f"{API}/directories/process", json={"directory_path": "photos"}).json()
    deep = client.post(f"{API}/directories/process", json={"directory_path": "photos", "recursive": True}).json()
    assert flat["total_files"] == 6 and deep["total_files"] == 7 and deep["processed"] == 1
    assert_envelope(client.post(f"{API}/directories/process", json={"directory_path": "missing"}), 404,
                    "ImageNotFoundError")
    assert_envelope(client.post(f"{API}/directories/process", json={"directory_path": "/"}), 403,
                    "PathNotAllowedError")
    assert_envelope(client.post(f"{API}/directories/process-async", json={"directory_path": "missing"}), 404)
    assert_envelope(client.get(f"{API}/directories/scan", params={"directory_path": "../"}), 403)
    assert_envelope(client.get(f"{API}/directories/scan"), 422, "ValidationError")


def test_scan_lists_files_and_what_is_indexed(client: TestClient, root: Path) -> None:
    _process(client, root / "photos" / "chelsea.jpg")
    (root / "photos" / "readme.txt").write_text("not an image")
    body = client.get(f"{API}/directories/scan", params={"directory_path": "photos"}).json()
    assert body["total_files"] == 6
    assert body["total_size"] == sum(f["file_size"] for f in body["files"])
    indexed = {f["filename"]: f["indexed"] for f in body["files"]}
    assert indexed["chelsea.jpg"] is True and indexed["coffee.jpg"] is False


def test_process_async_task_progress_and_result(client: TestClient, root: Path) -> None:
    r = client.post(f"{API}/directories/process-async", json={"directory_path": "photos"})
    assert r.status_code == 200
    created = r.json()
    assert created["status"] == "queued"
    assert created["message"] == "Directory processing started in background"
    task_id = created["task_id"]

    def finished() -> dict[str, Any] | None:
        task = client.get(f"{API}/directories/task/{task_id}").json()
        return task if task["status"] in ("completed", "failed") else None

    task = wait_for(finished)
    assert task["status"] == "completed", task
    assert task["progress"] == 100.0
    assert task["error"] is None
    assert task["result"]["processed"] == 6
    assert task["created_at"] <= task["updated_at"]
    assert [t["task_id"] for t in client.get(f"{API}/directories/tasks").json()] == [task_id]
    assert client.get(f"{API}/health").json()["stats"]["total_images"] == 6
    assert_envelope(client.get(f"{API}/directories/task/unknown"), 404, "TaskNotFoundError")


def _slow_extractor(tmp_path: Path, delay: float) -> Extractor:
    settings = settings_for_tests(tmp_path / "db", preset="tiny", batch_size=1)
    return Extractor(settings=settings, image_embedder=TinyImageEmbedder(delay=delay))


def test_task_progress_messages_while_running(tmp_path: Path, root: Path) -> None:
    with _slow_extractor(tmp_path, 0.15) as ex, TestClient(make_app(tmp_path, root, extractor=ex)) as c:
        task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
        seen = wait_for(lambda: (t := c.get(f"{API}/directories/task/{task_id}").json())["status"] == "processing"
                        and 0 < t["progress"] < 100 and t)
        assert seen["message"].startswith("Processing image ") and seen["message"].endswith(" of 6")
        wait_for(lambda: c.get(f"{API}/directories/task/{task_id}").json()["status"] == "completed")


def test_tasks_survive_a_restart_as_interrupted(tmp_path: Path, root: Path) -> None:
    """Stopping the server mid-task records it as interrupted; a new server shows it so."""
    with _slow_extractor(tmp_path, 0.2) as ex:
        with TestClient(make_app(tmp_path, root, extractor=ex)) as c:
            task_id = c.post(f"{API}/directories/process-async", json={"directory_path": "photos"}).json()["task_id"]
            wait_for(lambda: c.get(f"{API}/directories/task/{task_id}").json()["progress"] > 0)
        with TestClient(make_app(tmp_path, root, extractor=ex)) as c:
            task = c.get(f"{API}/directories/task/{task_id}").json()
            assert task["status"] == "interrupted"
            assert "stopped" in task["error"]
            assert 0 < ex.count() < 6  # what was committed before the stop stays


def test_a_crashed_servers_tasks_are_interrupted(tmp_path: Path, root: Path) -> None:
    """A task left 'processing' in the task database (a killed server) is shown as interrupted."""
    from imgctx.server.tasks import Task, TaskStore

    store = TaskStore(tmp_path / "db" / "server_tasks.sqlite3")
    store.save(Task("t-1", "processing", 40.0, "Processing image 2 of 5", "2026-01-01T00:00:00",
                    "2026-01-01T00:00:01", directory_path=str(root)))
    store.save(Task("t-2", "completed", 100.0, "done", "2026-01-01T00:00:00", "2026-01-01T00:00:01",
                    result=None))
    store.close()
    with TestClient(make_app(tmp_path, root)) as c:
        t1 = c.get(f"{API}/directories/task/t-1").json()
        assert t1["status"] == "interrupted" and t1["progress"] == 40.0
        assert t1["message"] == "Interrupted: Processing image 2 of 5"
        assert c.get(f"{API}/directories/task/t-2").json()["status"] == "completed"


# -- auth & CORS -------------------------------------------------------------------------------


def test_api_key_when_configured(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, api_key="k-123")) as c:
        assert c.get(f"{API}/health").status_code == 200  # health stays open for probes
        assert_envelope(c.get(f"{API}/images/"), 401, "AuthenticationError")
        assert_envelope(c.get(f"{API}/images/", headers={"X-API-Key": "wrong"}), 401)
        assert_envelope(c.get("/ws/stats"), 401)
        assert c.get(f"{API}/images/", headers={"X-API-Key": "k-123"}).status_code == 200


def test_cors_origins(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, cors_origins=["http://app.example"])) as c:
        ok = c.options(f"{API}/images/", headers={"Origin": "http://app.example",
                                                  "Access-Control-Request-Method": "GET"})
        assert ok.headers.get("access-control-allow-origin") == "http://app.example"
        other = c.get(f"{API}/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_no_cross_origin_access_by_default(tmp_path: Path, root: Path) -> None:
    """Without cors_origins no page on another origin may read or call the API (a local server
    without an API key must not be usable by any website the user opens)."""
    assert ServerSettings.from_values().cors_origins == ()
    with TestClient(make_app(tmp_path, root)) as c:
        pre = c.options(f"{API}/duplicates/remove-duplicates",
                        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "DELETE"})
        assert "access-control-allow-origin" not in pre.headers
        assert "access-control-allow-methods" not in pre.headers
        got = c.get(f"{API}/images/", headers={"Origin": "http://evil.example"})
        assert got.status_code == 200 and "access-control-allow-origin" not in got.headers


def test_development_mode_allows_all_origins(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, dev=True)) as c:
        pre = c.options(f"{API}/images/", headers={"Origin": "http://localhost:5173",
                                                   "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 200 and pre.headers.get("access-control-allow-origin") == "*"
        assert c.get(f"{API}/health", headers={"Origin": "http://x.example"}).headers[
            "access-control-allow-origin"] == "*"
    # listed origins win over the development default
    with TestClient(make_app(tmp_path, root, dev=True, cors_origins=["http://app.example"])) as c:
        assert "access-control-allow-origin" not in c.get(f"{API}/health", headers={"Origin": "http://x.example"}).headers


class _GatedEmbedder(TinyImageEmbedder):
    """The tiny image embedder, held inside its first call until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.entered = threading.Event()
        self.gate = threading.Event()

    def embed_images(self, images: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(timeout=30)
        return super().embed_images(images)


def test_model_work_never_blocks_the_server(tmp_path: Path, root: Path) -> None:
    """While a task sits inside a model call, health, search, task status and writes' queueing
    all keep answering: the model runs in a worker thread, not on the event loop."""
    embedder = _GatedEmbedder()
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings, image_embedder=embedder) as ex, \
            TestClient(make_app(tmp_path, root, extractor=ex)) as c:
        embedder.gate.set()
        ex.process(root / "photos" / "chelsea.jpg")  # something to find
        embedder.gate.clear()
        embedder.entered.clear()
        task_id = c.post(f"{API}/directories/process-async",
                         json={"directory_path": "photos", "force_reprocess": True}).json()["task_id"]
        assert embedder.entered.wait(timeout=30)
        assert c.get(f"{API}/health").status_code == 200
        hits = c.get(f"{API}/images/", params={"query": "colour"}).json()
        assert [Path(h["path"]).name for h in hits] == ["chelsea.jpg"]
        assert c.get(f"{API}/directories/task/{task_id}").json()["status"] == "processing"
        embedder.gate.set()
        wait_for(lambda: c.get(f"{API}/directories/task/{task_id}").json()["status"] == "completed")


def test_upload_dir_that_is_a_file_is_400(client: TestClient, root: Path) -> None:
    (root / "afile").write_text("x")
    data = (root / "photos" / "coffee.jpg").read_bytes()
    assert_envelope(_upload(client, data, "c.jpg", upload_dir="afile"), 400, "BadRequestError")
    assert (root / "afile").read_text() == "x"


def test_unreadable_folder_is_403(client: TestClient, root: Path) -> None:
    locked = root / "locked"
    locked.mkdir()
    shutil.copy(root / "photos" / "coffee.jpg", locked / "c.jpg")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user that ignores permissions")
        body = assert_envelope(client.get(f"{API}/directories/scan", params={"directory_path": "locked"}), 403)
        assert body["error"] == "PermissionError"
    finally:
        locked.chmod(0o755)


def test_oversized_upload_is_refused_before_its_body_is_read(tmp_path: Path, root: Path) -> None:
    """A Content-Length over the limit is answered 413 at once; the body is never parsed."""
    with TestClient(make_app(tmp_path, root, max_upload_bytes=1000)) as c:
        body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n" + b"x" * 200_000
        r = c.post(f"{API}/images/upload", content=body,
                   headers={"content-type": "multipart/form-data; boundary=b"})
        assert_envelope(r, 413, "UploadTooLargeError")
    assert not (root / "uploads").exists()


def test_server_package_uses_only_the_public_api() -> None:
    """Layering: imgctx.server imports imgctx's public names (imgctx.__all__), never its private
    modules; the one exception is the documented command line, whose ``serve`` command the
    ``imgctx-server`` script runs."""
    import ast

    import imgctx
    import imgctx.server

    package = Path(imgctx.server.__file__).parent
    for source in package.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "imgctx":
                if node.module == "imgctx":
                    names = {alias.name for alias in node.names}
                    assert names <= set(imgctx.__all__), f"{source.name}: {names - set(imgctx.__all__)}"
                else:
                    assert node.module.startswith("imgctx.server") or node.module == "imgctx._cli", \
                        f"{source.name} imports {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name == "imgctx" or not alias.name.startswith("imgctx.") \
                        or alias.name.startswith("imgctx.server"), f"{source.name} imports {alias.name}"


def test_serve_without_the_server_extra_names_the_install_command() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['fastapi'] = None\n"
            "from imgctx._cli import main; sys.argv = ['imgctx', 'serve']; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert 'pip install "imgctx[server]"' in out.stderr
    assert "Traceback" not in out.stderr
