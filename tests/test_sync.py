"""The index stays true to the disk: vanished files pruned, moved files keep their outputs,
duplicates the user removed stay removed (real files, the real faiss store)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from imgctx import Extractor
from imgctx.testing import settings_for_tests


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    return folder


def test_deleted_and_renamed_files_leave_the_index(tiny: Extractor, photos: Path) -> None:
    assert tiny.process_directory(photos).processed == 6
    before = tiny.get_by_path(photos / "rocket.jpg")
    cat = tiny.get_by_path(photos / "chelsea.jpg")
    assert before is not None and cat is not None
    (photos / "chelsea.jpg").unlink()
    (photos / "rocket.jpg").rename(photos / "launch.jpg")
    calls = tiny.components.image_embedder.calls

    report = tiny.process_directory(photos)

    assert tiny.count() == 5 and len(tiny.list()) == 5
    assert tiny.get_by_path(photos / "chelsea.jpg") is None and tiny.get_by_path(photos / "rocket.jpg") is None
    moved = tiny.get_by_path(photos / "launch.jpg")
    assert moved is not None and moved.caption == before.caption and moved.created_at == before.created_at
    assert tiny.components.image_embedder.calls == calls  # outputs carried over, no model run
    assert report.moved == 1 and report.processed == 1 and report.skipped == 4
    assert sorted(report.pruned_ids) == sorted([before.id, cat.id])
    hits = tiny.search("red", limit=10)
    assert all(Path(h.record.path).exists() for h in hits)
    assert tiny.search_image(photos / "launch.jpg", limit=1, exclude_self=False)[0].record.id == moved.id


def test_no_prune_keeps_records_and_prune_is_scoped(tiny: Extractor, photos: Path) -> None:
    sub = photos / "sub"
    sub.mkdir()
    shutil.copy(photos / "coffee.jpg", sub / "cup.jpg")
    tiny.process_directory(photos, recursive=True)
    (sub / "cup.jpg").unlink()
    (photos / "chelsea.jpg").unlink()
    report = tiny.process_directory(photos, prune=False)
    assert report.pruned_ids == () and tiny.count() == 7
    report = tiny.process_directory(photos)  # not recursive: sub/ is not looked at
    assert len(report.pruned_ids) == 1 and tiny.get_by_path(sub / "cup.jpg") is not None
    cup = tiny.get_by_path(sub / "cup.jpg")
    assert cup is not None and tiny.prune(photos) == [cup.id]
    assert tiny.count() == 5


def test_removed_duplicates_stay_removed_until_force_or_undo(tiny: Extractor, photos: Path) -> None:
    shutil.copy(photos / "coffee.jpg", photos / "coffee copy.jpg")
    tiny.process_directory(photos)
    removal = tiny.remove_duplicates(dry_run=False)
    assert len(removal.removed_ids) == 1 and tiny.count() == 6
    removed_path = removal.removed_paths[0]
    assert tiny.removed_duplicates() == [removed_path]

    report = tiny.process_directory(photos)
    assert report.excluded_files == (removed_path,) and tiny.count() == 6

    restored = tiny.restore_duplicates()
    assert restored.processed == 1 and tiny.count() == 7 and tiny.removed_duplicates() == []

    tiny.remove_duplicates(dry_run=False)
    assert tiny.count() == 6
    report = tiny.process_directory(photos, force=True)
    assert report.excluded_files == () and tiny.count() == 7


def test_removed_duplicate_comes_back_when_it_changes_and_across_sessions(tmp_path: Path, photos: Path) -> None:
    shutil.copy(photos / "coffee.jpg", photos / "coffee copy.jpg")
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings) as ex:
        ex.process_directory(photos)
        removed = ex.remove_duplicates(dry_run=False).removed_paths[0]
    with Extractor(settings=settings) as ex:  # remembered on disk, beside the store
        assert ex.process_directory(photos).excluded_files == (removed,)
        shutil.copy(photos / "rocket.jpg", removed)  # a new image under that name
        report = ex.process_directory(photos)
        assert report.excluded_files == () and ex.get_by_path(removed) is not None
        assert ex.removed_duplicates() == []


def test_cli_index_prunes_and_reports(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos))[0] == 0
    os.remove(photos / "astronaut.jpg")
    (photos / "coffee.jpg").rename(photos / "mug.jpg")
    code, out, _ = run("index", str(photos))
    assert code == 0 and "1 moved" in out and "2 removed" in out
    code, out, _ = run("list", "--json")
    assert code == 0 and len(json.loads(out)) == 5
    (photos / "chelsea.jpg").unlink()
    code, out, _ = run("index", str(photos), "--no-prune", "--json")
    assert code == 0 and json.loads(out)["pruned_ids"] == []
    assert len(json.loads(run("list", "--json")[1])) == 5


def test_cli_dedupe_undo(run, photos: Path) -> None:  # noqa: ANN001
    shutil.copy(photos / "coffee.jpg", photos / "again.jpg")
    run("index", str(photos))
    code, out, _ = run("dedupe", "--apply", "--json")
    assert code == 0 and json.loads(out)["total_removed"] == 1
    code, out, _ = run("index", str(photos))
    assert code == 0 and "1 left out" in out
    code, out, _ = run("dedupe", "--undo", "--json")
    assert code == 0 and json.loads(out)["processed"] == 1
    assert len(json.loads(run("list", "--json")[1])) == 7
