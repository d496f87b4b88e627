"""`imgctx duplicates`, `imgctx compare` and `imgctx dedupe` through click's runner (tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    shutil.copy(folder / "chelsea.jpg", folder / "chelsea_copy.jpg")
    with Image.open(folder / "coffee.jpg") as im:
        im.convert("RGB").resize((im.width * 2, im.height * 2)).save(folder / "coffee_big.png")
    return folder


def test_duplicates_of_a_directory(run, photos: Path) -> None:  # noqa: ANN001
    code, out, _ = run("duplicates", str(photos), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["total_images"] == 8 and data["total_duplicates"] == 2
    groups = {Path(g["paths"][0]).name: g for g in data["duplicate_groups"]}
    assert Path(groups["chelsea.jpg"]["paths"][1]).name == "chelsea_copy.jpg"
    assert groups["chelsea.jpg"]["similarity_scores"] == [1.0] and groups["chelsea.jpg"]["exact"] == [True]
    assert Path(groups["coffee.jpg"]["paths"][1]).name == "coffee_big.png"
    code, out, _ = run("duplicates", str(photos))
    assert code == 0 and "Found 2 duplicate groups with 2 duplicate images among 8 images" in out
    assert "exact" in out
    code, out, _ = run("duplicates", str(photos), "--threshold", "1.0", "--json")
    assert json.loads(out)["total_duplicates"] == 1  # only the byte copy at 1.0


def test_compare_prints_every_metric(run, photos: Path) -> None:  # noqa: ANN001
    code, out, _ = run("compare", str(photos / "coffee.jpg"), str(photos / "coffee_big.png"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["is_duplicate"] and not data["exact"] and data["phash_distance"] <= 4
    assert data["embedding_cosine"] is not None and data["reason"] == "hashes and image vectors agree"
    code, out, _ = run("compare", str(photos / "coffee.jpg"), str(photos / "rocket.jpg"))
    assert code == 0 and "is_duplicate: False" in out and "phash_distance" in out and "reason" in out


def test_dedupe_reports_unless_applied(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos), "--json")[0] == 0
    code, out, _ = run("dedupe", "--keep", "largest", "--threshold", "0.95", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["dry_run"] and data["total_removed"] == 2
    assert "coffee.jpg" in {Path(p).name for p in data["removed_paths"]}  # the PNG is larger
    assert json.loads(run("list", "--json")[1]).__len__() == 8  # nothing removed
    code, out, _ = run("dedupe", "--keep", "largest", "--threshold", "0.95")
    assert code == 0 and "dry run: would remove 2 images from 2 groups" in out
    code, out, _ = run("dedupe", "--keep", "largest", "--threshold", "0.95", "--apply", "--delete-files")
    assert code == 0 and "removed 2 images from 2 groups, 2 files deleted" in out
    assert len(json.loads(run("list", "--json")[1])) == 6
    assert not (photos / "coffee.jpg").exists() and (photos / "coffee_big.png").exists()
    assert (photos / "chelsea.jpg").exists() != (photos / "chelsea_copy.jpg").exists()


def test_errors_are_one_line(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = run("compare", str(photos / "coffee.jpg"), str(tmp_path / "missing.jpg"))
    assert code == 1 and err.startswith("Error: ") and "file not found" in err and len(err.strip().splitlines()) == 1
    code, _, err = run("duplicates", str(tmp_path / "nowhere"))
    assert code == 1 and "directory not found" in err
    code, _, err = run("dedupe", "--delete-files")
    assert code == 2 and "--delete-files needs --apply" in err
    code, _, err = run("dedupe", "--keep", "smallest")
    assert code == 2
