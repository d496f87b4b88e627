"""The API additions the web app needs: thumbnails, image search, paging and per-space scores
in text search, tag counts, newest-first listing, the page itself and its configuration (tiny
models, the real faiss store, real photos)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from server_support import assert_envelope, make_app, photo_root  # noqa: E402

API = "/api/v1"


@pytest.fixture
def root(tmp_path: Path, photo_dir: Path) -> Path:
    return photo_root(tmp_path, photo_dir)


@pytest.fixture
def client(tmp_path: Path, root: Path) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path, root)) as c:
        r = c.post(f"{API}/directories/process", json={"directory_path": "photos"})
        assert r.status_code == 200 and r.json()["processed"] == 6
        yield c


def _id(client: TestClient, filename: str) -> str:
    return next(i["id"] for i in client.get(f"{API}/images/").json() if i["filename"] == filename)


def test_thumbnail_is_cached_revalidated_and_invalidated(client: TestClient, tmp_path: Path, root: Path) -> None:
    rid = _id(client, "astronaut.jpg")
    r = client.get(f"{API}/images/{rid}/thumbnail", params={"size": 128})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "private, no-cache"
    etag = r.headers["etag"]
    with Image.open(io.BytesIO(r.content)) as im:
        assert max(im.size) == 128 and im.format == "JPEG"
    cached = list((tmp_path / "db" / "thumbnails").rglob(f"{rid}-128-jpeg-*"))
    assert len(cached) == 1
    again = client.get(f"{API}/images/{rid}/thumbnail", params={"size": 128}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    cached[0].unlink()  # a revalidation needs no thumbnail: the ETag follows the file, not the cache
    assert client.get(f"{API}/images/{rid}/thumbnail", params={"size": 128},
                      headers={"If-None-Match": f'"x", {etag}'}).status_code == 304
    assert not cached[0].exists()
    assert client.get(f"{API}/images/{rid}/thumbnail", params={"size": 128}).headers["etag"] == etag
    assert cached[0].exists()
    webp = client.get(f"{API}/images/{rid}/thumbnail", params={"size": 64, "format": "webp"})
    assert webp.headers["content-type"] == "image/webp" and webp.headers["etag"] != etag
    with Image.open(io.BytesIO(webp.content)) as im:
        assert im.format == "WEBP" and max(im.size) == 64
    # the file changes (another picture, another time): a new ETag, a new thumbnail, the old one gone
    photo = root / "photos" / "astronaut.jpg"
    Image.new("RGB", (300, 100), (250, 0, 0)).save(photo, "JPEG")
    os.utime(photo, ns=(photo.stat().st_atime_ns, photo.stat().st_mtime_ns + 10**9))
    changed = client.get(f"{API}/images/{rid}/thumbnail", params={"size": 128}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    with Image.open(io.BytesIO(changed.content)) as im:
        assert im.size == (128, 43) and im.getpixel((64, 20))[0] > 200
    assert [p.name for p in (tmp_path / "db" / "thumbnails").rglob(f"{rid}-128-jpeg-*")] != [cached[0].name]
    assert len(list((tmp_path / "db" / "thumbnails").rglob(f"{rid}-128-jpeg-*"))) == 1


def test_thumbnail_errors(client: TestClient, root: Path) -> None:
    assert_envelope(client.get(f"{API}/images/nope/thumbnail"), 404)
    rid = _id(client, "coffee.jpg")
    assert_envelope(client.get(f"{API}/images/{rid}/thumbnail", params={"size": 5000}), 422)
    (root / "photos" / "coffee.jpg").unlink()
    assert_envelope(client.get(f"{API}/images/{rid}/thumbnail"), 404)


def _fields(hit: dict[str, Any]) -> set[str]:
    return set(hit)


def test_image_search_by_file_id_and_path(client: TestClient, root: Path) -> None:
    cat = _id(client, "chelsea.jpg")
    text_hit = client.get(f"{API}/images/", params={"query": "a photo", "limit": 1}).json()[0]
    by_id = client.post(f"{API}/search/image", data={"image_id": cat, "limit": 3})
    assert by_id.status_code == 200, by_id.text
    hits = by_id.json()
    assert len(hits) == 3 and cat not in {h["id"] for h in hits}
    assert _fields(hits[0]) == _fields(text_hit)
    assert set(hits[0]["scores"]) == {"image"} and hits[0]["score"] == pytest.approx(hits[0]["scores"]["image"])
    by_path = client.post(f"{API}/search/image", data={"image_path": "photos/chelsea.jpg", "limit": 3}).json()
    assert [h["id"] for h in by_path] == [h["id"] for h in hits]
    with open(root / "photos" / "chelsea.jpg", "rb") as fh:
        by_file = client.post(f"{API}/search/image", files={"file": ("q.jpg", fh, "image/jpeg")},
                              data={"limit": "2"}).json()
    assert by_file[0]["id"] == cat and by_file[0]["score"] > 0.99  # the same picture, not left out
    page = client.post(f"{API}/search/image", data={"image_id": cat, "limit": 2, "offset": 1}).json()
    assert [h["id"] for h in page] == [h["id"] for h in hits[1:3]]


def test_image_search_errors(client: TestClient) -> None:
    assert_envelope(client.post(f"{API}/search/image", data={"limit": 3}), 400, "BadRequestError")
    assert_envelope(client.post(f"{API}/search/image", data={"image_id": "x", "image_path": "y"}), 400)
    assert_envelope(client.post(f"{API}/search/image", data={"image_id": "missing"}), 404)
    assert_envelope(client.post(f"{API}/search/image", data={"image_path": "/etc/passwd"}), 403)
    not_image = client.post(f"{API}/search/image", files={"file": ("a.jpg", b"hello", "image/jpeg")})
    assert_envelope(not_image, 400)


def test_text_search_pages_and_scores(client: TestClient) -> None:
    everything = client.get(f"{API}/images/", params={"query": "a photo", "limit": 6}).json()
    assert all("text" in h["scores"] and all(0 <= v <= 1 for v in h["scores"].values()) for h in everything)
    assert everything[0]["score"] == pytest.approx(everything[0]["scores"]["text"], abs=1e-5)  # one space
    pages = [client.get(f"{API}/images/", params={"query": "a photo", "limit": 2, "offset": o}).json()
             for o in (0, 2, 4)]
    assert [h["id"] for p in pages for h in p] == [h["id"] for h in everything]
    bare = client.get(f"{API}/images/", params={"query": "a photo", "include_metadata": False}).json()
    assert "scores" not in bare[0] and "score" not in bare[0]


def test_websocket_search_pages_and_scores(client: TestClient) -> None:
    with client.websocket_connect("/ws/search") as ws:
        assert ws.receive_json()["type"] == "connected"
        ws.send_json({"type": "search", "id": 1, "query": "a photo", "limit": 4})
        first = ws.receive_json()
        ws.send_json({"type": "search", "id": 2, "query": "a photo", "limit": 2, "offset": 2})
        second = ws.receive_json()
        ws.send_json({"type": "search", "id": 3, "query": "a photo", "offset": -1})
        bad = ws.receive_json()
    assert second["id"] == 2 and second["offset"] == 2
    assert [h["id"] for h in second["results"]] == [h["id"] for h in first["results"][2:]]
    assert "text" in first["results"][0]["scores"]
    assert bad["type"] == "error" and "offset" in bad["message"]


def test_objects_with_counts_and_newest_first(client: TestClient) -> None:
    objects = client.get(f"{API}/objects").json()
    assert objects and [o["count"] for o in objects] == sorted((o["count"] for o in objects), reverse=True)
    for o in objects[:3]:
        listed = client.get(f"{API}/images/", params={"objects": o["label"], "limit": 100}).json()
        assert len(listed) == o["count"]
    assert len(client.get(f"{API}/objects", params={"limit": 1}).json()) == 1
    oldest = [i["id"] for i in client.get(f"{API}/images/").json()]
    newest = [i["id"] for i in client.get(f"{API}/images/", params={"order": "newest"}).json()]
    assert newest == oldest[::-1]
    pages = [client.get(f"{API}/images/", params={"order": "newest", "limit": 4, "offset": o}).json()
             for o in (0, 4, 8)]
    assert [i["id"] for p in pages for i in p] == newest and pages[2] == []


def test_the_page_its_files_and_its_configuration(client: TestClient, root: Path) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<input type="search"' in page.text
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    config = client.get(f"{API}/ui/config").json()
    assert config["allowed_roots"] == [str(root.resolve())] and config["total_images"] == 6
    assert config["caption_from_tags"] is True and config["upload_dir"] == "uploads"  # tiny: tags-caption


def test_with_an_api_key_the_page_is_public_and_the_data_is_not(tmp_path: Path, root: Path) -> None:
    with TestClient(make_app(tmp_path, root, api_key="k3y")) as c:
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        assert_envelope(c.get(f"{API}/ui/config"), 401)
        assert_envelope(c.get(f"{API}/objects"), 401)
        assert_envelope(c.get(f"{API}/images/x/thumbnail"), 401)
        assert_envelope(c.post(f"{API}/search/image", data={"image_id": "x"}), 401)
        assert c.get(f"{API}/objects", headers={"X-API-Key": "k3y"}).status_code == 200


def test_the_page_may_open_websockets_on_its_own_origin(client: TestClient) -> None:
    """The app's page (Origin = this server) connects; other origins stay refused."""
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect("/ws/search", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json()["type"] == "connected"
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/ws/search", headers={"Origin": "http://other.example"}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect) as refused:  # the same host by another scheme is another origin
        with client.websocket_connect("/ws/search", headers={"Origin": "https://testserver"}) as ws:
            ws.receive_json()
    assert refused.value.code == 1008


def test_the_app_ships_small_and_loads_nothing_from_elsewhere() -> None:
    """Every asset is in the package, JS+CSS stay under 150 KB, and no file names another
    origin (no CDN, fonts or scripts from elsewhere)."""
    import imgctx.server

    static = Path(imgctx.server.__file__).parent / "static"
    files = sorted(static.iterdir())
    assert {f.name for f in files} >= {"index.html", "app.js", "app.css"}
    assert sum(f.stat().st_size for f in files if f.suffix in (".js", ".css")) < 150 * 1024
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), f.name
        if f.suffix == ".css":  # styles load nothing (no fonts, images or other sheets)
            assert "@import" not in text and "url(" not in text, f.name
    html = (static / "index.html").read_text(encoding="utf-8")
    for src in re.findall(r'(?:src|href)="([^"#?]+)"', html):
        assert src.startswith(("/static/", "data:", "?", "/")), src
        if src.startswith("/static/"):
            assert (static / src.removeprefix("/static/")).is_file(), src


def test_image_search_takes_an_upload_over_the_body_limit(tmp_path: Path, root: Path) -> None:
    """An image to search with is an upload (``max_upload_bytes``), not a small body."""
    photo = (root / "photos" / "chelsea.jpg").read_bytes()
    assert len(photo) > 2000
    with TestClient(make_app(tmp_path, root, max_body_bytes=2000, max_upload_bytes=len(photo) + 10)) as c:
        c.post(f"{API}/directories/process", json={"directory_path": "photos"})
        hits = c.post(f"{API}/search/image", files={"file": ("q.jpg", photo, "image/jpeg")}, data={"limit": "1"})
        assert hits.status_code == 200 and hits.json()[0]["filename"] == "chelsea.jpg"
        assert_envelope(c.post(f"{API}/search/image", files={"file": ("q.jpg", photo + b"x" * 70_000, "image/jpeg")}),
                        413, "UploadTooLargeError")
