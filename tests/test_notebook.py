"""In a notebook: short reprs, thumbnail grids with no network, search() given an image, clear
type errors, hits that explain themselves (real files, the real faiss store, tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from imgctx import Extractor


@pytest.fixture
def indexed(tiny: Extractor, tmp_path: Path, photo_dir: Path) -> Extractor:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    tiny.process_directory(folder)
    return tiny


def test_reprs_are_short_and_name_what_matters(indexed: Extractor) -> None:
    text = repr(indexed)
    assert str(indexed.settings.db_path) in text and "'tiny'" in text and "6 images" in text
    hit = indexed.search("red", limit=1)[0]
    record = hit.record
    for shown in (repr(hit), repr(record)):
        assert len(shown) < 300 and shown.count("\n") == 0
        assert record.content_hash not in shown and record.phash not in shown
    assert f"score={hit.score:.3f}" in repr(hit) and record.filename in repr(hit)
    assert record.id[:12] in repr(record) and f"{record.size[0]}x{record.size[1]}" in repr(record)
    indexed.close()
    assert "closed" in repr(indexed)


def test_results_render_as_a_thumbnail_grid_without_network(indexed: Extractor) -> None:
    hits = indexed.search("red", limit=4)
    assert isinstance(hits, list) and len(hits) == 4
    page = hits._repr_html_()
    assert page.count('<img src="data:image/jpeg;base64,') == 4
    assert "http" not in page and "imgctx-grid" in page
    records = indexed.list(limit=3)
    assert records._repr_html_().count("data:image/jpeg;base64,") == 3
    assert hits[0]._repr_html_().count("<img") == 1 and records[0]._repr_html_().count("<img") == 1
    Path(records[0].path).unlink()  # a vanished file still renders, as a placeholder
    assert "file not readable" in records._repr_html_()


def test_search_takes_an_image_and_refuses_other_types(indexed: Extractor) -> None:
    path = Path(indexed.list(limit=1)[0].path)
    by_path = indexed.search(path, limit=3)
    assert [h.record.id for h in by_path] == [h.record.id for h in indexed.search_image(path, limit=3)]
    assert indexed.search(str(path), limit=3)[0].query == str(path)  # a str is text, never a file
    with Image.open(path) as img:
        assert indexed.search(img.convert("RGB"), limit=1)[0].record.path == str(path)  # not excluded: no path
    assert all(h.query is None for h in by_path)
    for bad in (b"red", 42, ["red"]):
        with pytest.raises(TypeError, match="search takes a text, a path or a PIL image"):
            indexed.search(bad)  # type: ignore[arg-type]
    for objects, shown in ((5, "not int 5"), (["cat", 3], "a list holding int"), ({"cat": 1}, "not dict")):
        with pytest.raises(TypeError, match="objects must be a string"):
            indexed.search("red", objects=objects)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=shown):
            indexed.list(objects=objects)  # type: ignore[arg-type]


def test_a_hit_explains_itself(indexed: Extractor, run) -> None:  # noqa: ANN001
    hit = indexed.search("red things", limit=1)[0]
    assert "red" in hit.record.objects and hit.matched_tags == ("red",)
    assert hit.matched_words == (("red",) if "red" in hit.record.caption.split(", ") or
                                 "red" in hit.record.caption.replace(",", " ").split() else ())
    line = hit.explain()
    assert line.startswith(f"score {hit.score:.3f}") and "tags matched: red" in line
    assert f"text {hit.scores['text']:.3f}" in line
    image_hit = indexed.search_image(hit.record.path, limit=1)[0]
    assert image_hit.matched_tags == () and image_hit.explain().endswith("image similarity")


def test_cli_search_explain(run, tmp_path: Path, photo_dir: Path) -> None:  # noqa: ANN001
    run("index", str(photo_dir))
    code, out, _ = run("search", "red", "--explain", "--limit", "1", "--json")
    hit = json.loads(out)[0]
    assert code == 0 and hit["matched_tags"] == ["red"] and "tags matched: red" in hit["explanation"]
    assert set(hit["scores"]) == {"text"}
    code, out, _ = run("search", "red", "--explain", "--limit", "1")
    assert code == 0 and "tags matched: red" in out.splitlines()[2]
