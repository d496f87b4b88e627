"""Duplicate endpoints on the library's duplicate engine: real photos, an exact copy and a
resized, recompressed variant; tiny models and the real faiss store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from server_support import assert_envelope, make_app, photo_root  # noqa: E402

DUP = "/api/v1/duplicates"


@pytest.fixture
def root(tmp_path: Path, photo_dir: Path) -> Path:
    """photos/ (6 distinct photos) plus copy.jpg (exact) and small.jpg (resized, recompressed chelsea)."""
    root = photo_root(tmp_path, photo_dir)
    photos = root / "photos"
    shutil.copy(photos / "chelsea.jpg", photos / "copy.jpg")
    with Image.open(photos / "chelsea.jpg") as img:
        img.resize((img.width * 2 // 3, img.height * 2 // 3)).save(photos / "small.jpg", quality=60)
    return root


@pytest.fixture
def client(tmp_path: Path, root: Path) -> Iterator[TestClient]:
    with TestClient(make_app(tmp_path, root)) as c:
        r = c.post("/api/v1/directories/process", json={"directory_path": "photos"})
        assert r.json()["processed"] == 8
        yield c


def _names(paths: list[str]) -> set[str]:
    return {Path(p).name for p in paths}


def test_check_the_store(client: TestClient) -> None:
    body = client.post(f"{DUP}/check", json={"similarity_threshold": 0.9}).json()
    assert body["success"] is True and body["total_images"] == 8
    assert len(body["duplicate_groups"]) == 1
    group = body["duplicate_groups"][0]
    assert _names(group["paths"]) == {"chelsea.jpg", "copy.jpg", "small.jpg"}
    assert len(group["paths"]) == 1 + len(group["duplicate_ids"]) == 3
    assert len(group["similarity_scores"]) == 2 and all(0.9 <= s <= 1 for s in group["similarity_scores"])
    assert body["total_duplicates"] == 2
    assert body["message"] == "Found 1 duplicate groups with 2 duplicate images"
    assert body["check_time"] >= 0


def test_check_a_directory_without_indexing_it(client: TestClient, root: Path) -> None:
    other = root / "other"
    other.mkdir()
    shutil.copy(root / "photos" / "rocket.jpg", other / "a.jpg")
    shutil.copy(root / "photos" / "rocket.jpg", other / "b.jpg")
    shutil.copy(root / "photos" / "coffee.jpg", other / "c.jpg")
    body = client.post(f"{DUP}/check", json={"directory_path": "other"}).json()
    assert body["total_images"] == 3 and body["total_duplicates"] == 1
    assert _names(body["duplicate_groups"][0]["paths"]) == {"a.jpg", "b.jpg"}
    same = client.get(f"{DUP}/check-directory", params={"directory_path": "other"}).json()
    assert same["duplicate_groups"] == body["duplicate_groups"]
    assert client.get("/api/v1/health").json()["stats"]["total_images"] == 8  # store unchanged


def test_check_one_image(client: TestClient, root: Path) -> None:
    body = client.post(f"{DUP}/check", json={"image_path": "photos/small.jpg", "similarity_threshold": 0.9}).json()
    group = body["duplicate_groups"][0]
    assert Path(group["paths"][0]).name == "small.jpg"
    assert _names(group["paths"][1:]) == {"chelsea.jpg", "copy.jpg"}
    r = client.get(f"{DUP}/check-image", params={"image_path": "photos/copy.jpg"})
    assert r.status_code == 200
    found = r.json()
    assert found["image_id"] is not None
    assert [Path(d["path"]).name for d in found["duplicates"]][0] == "chelsea.jpg"
    first = found["duplicates"][0]
    assert first["similarity"] == 1.0 and first["comparison"]["exact"] is True
    lonely = client.get(f"{DUP}/check-image", params={"image_path": "photos/rocket.jpg"}).json()
    assert lonely["total_matches"] == 0 and lonely["duplicates"] == []


def test_check_an_image_against_a_directory(client: TestClient, root: Path) -> None:
    body = client.post(f"{DUP}/check", json={"image_path": "photos/chelsea.jpg", "directory_path": "photos",
                                             "similarity_threshold": 0.9}).json()
    assert body["total_images"] == 8
    assert _names(body["duplicate_groups"][0]["paths"]) == {"chelsea.jpg", "copy.jpg", "small.jpg"}
    missing = client.post(f"{DUP}/check", json={"image_path": "photos/none.jpg", "directory_path": "photos"})
    assert_envelope(missing, 404, "ImageNotFoundError")


def test_compare_returns_every_metric(client: TestClient) -> None:
    same = client.post(f"{DUP}/compare", json={"image1_path": "photos/chelsea.jpg",
                                               "image2_path": "photos/small.jpg"}).json()
    assert same["success"] is True and same["is_duplicate"] is True and same["exact"] is False
    for key in ("similarity", "phash_distance", "dhash_distance", "hash_similarity", "embedding_cosine",
                "embedding_similarity", "threshold", "orientation", "geometric_inliers"):
        assert key in same
    assert same["reason"]
    different = client.post(f"{DUP}/compare", json={"image1_path": "photos/chelsea.jpg",
                                                    "image2_path": "photos/rocket.jpg"}).json()
    assert different["is_duplicate"] is False
    assert different["similarity"] < same["similarity"]


def test_remove_duplicates_dry_run_then_for_real(client: TestClient, root: Path) -> None:
    dry = client.delete(f"{DUP}/remove-duplicates", params={"similarity_threshold": 0.9}).json()
    assert dry["dry_run"] is True and dry["keep"] == "first" and dry["total_removed"] == 2
    assert client.get("/api/v1/health").json()["stats"]["total_images"] == 8  # nothing changed
    real = client.delete(f"{DUP}/remove-duplicates",
                         params={"similarity_threshold": 0.9, "dry_run": False, "keep_first": False}).json()
    assert real["dry_run"] is False and real["keep"] == "largest" and real["total_removed"] == 2
    assert real["message"] == "Removed 2 duplicate images from 1 groups"
    assert client.get("/api/v1/health").json()["stats"]["total_images"] == 6
    assert all((root / "photos" / n).exists() for n in ("chelsea.jpg", "copy.jpg", "small.jpg"))


def test_remove_duplicates_with_files(client: TestClient, root: Path) -> None:
    body = client.delete(f"{DUP}/remove-duplicates", params={"similarity_threshold": 0.9, "dry_run": False,
                                                            "keep": "highest-resolution",
                                                            "delete_files": True}).json()
    assert len(body["files_deleted"]) == 2
    left = {p.name for p in (root / "photos").iterdir()}
    assert "small.jpg" not in left and len(left & {"chelsea.jpg", "copy.jpg"}) == 1


def test_duplicate_errors(client: TestClient, root: Path) -> None:
    assert_envelope(client.post(f"{DUP}/compare", json={"image1_path": "photos/chelsea.jpg",
                                                        "image2_path": "/etc/hostname"}), 403)
    assert_envelope(client.post(f"{DUP}/compare", json={"image1_path": "photos/chelsea.jpg",
                                                        "image2_path": "photos/none.jpg"}), 404)
    assert_envelope(client.post(f"{DUP}/compare", json={"image1_path": "photos/chelsea.jpg"}), 422)
    assert_envelope(client.post(f"{DUP}/check", json={"similarity_threshold": 2}), 422)
    assert_envelope(client.get(f"{DUP}/check-image", params={"image_path": "photos/none.jpg"}), 404)
    assert_envelope(client.get(f"{DUP}/check-directory", params={"directory_path": "nope"}), 404)
    assert_envelope(client.get(f"{DUP}/check-directory", params={"directory_path": "/"}), 403)
    assert_envelope(client.delete(f"{DUP}/remove-duplicates", params={"keep": "smallest"}), 422)
    outside = root.parent / "out.jpg"
    shutil.copy(root / "photos" / "coffee.jpg", outside)
    os.symlink(outside, root / "photos" / "link.jpg")
    body = assert_envelope(client.get(f"{DUP}/check-directory", params={"directory_path": "photos"}), 403)
    assert "outside the allowed roots" in body["message"]
