"""Combined queries: weighted text and image terms added and subtracted, in the library, the CLI
and over HTTP (real files, the real faiss store, tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgctx import ConfigurationError, Extractor, parse_mixed_query


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    return folder


def test_parse_mixed_query() -> None:
    assert parse_mixed_query('"horse" + "stripes"') == [(1.0, "horse"), (1.0, "stripes")]
    assert parse_mixed_query('2 * "golden retriever" + pool.jpg - "people"') == [
        (2.0, "golden retriever"), (1.0, Path("pool.jpg")), (-1.0, "people")]
    assert parse_mixed_query("black-and-white cat - 0.5 * dog") == [(1.0, "black-and-white cat"), (-0.5, "dog")]
    for bad in ("", "+", '"a" -', '""', "- + cat"):
        with pytest.raises(ConfigurationError):
            parse_mixed_query(bad)


def test_terms_add_and_subtract(tiny: Extractor, photos: Path) -> None:
    tiny.process_directory(photos)
    single = tiny.search("red", limit=6)
    assert [h.record.id for h in tiny.search_mixed('"red"', limit=6)] == [h.record.id for h in single]
    # the text vector of "red" + "blue" is the normalised sum of the two terms' vectors
    both = tiny.search_mixed('"red" + "blue"', limit=6)
    red = tiny.components.text_embedder.embed_texts(["red"])[0]
    blue = tiny.components.text_embedder.embed_texts(["blue"])[0]
    query = (red + blue) / np.linalg.norm(red + blue)
    stored = tiny.store.vectors("text", [h.record.id for h in both])
    for hit in both:
        assert hit.scores["text"] == pytest.approx(max(0.0, float(stored[hit.record.id] @ query)), abs=1e-5)
    minus = tiny.search_mixed('"colour" - "red"', limit=6)
    reds = {h.record.id for h in minus if "red" in h.record.objects}
    assert reds and all(h.score < min(m.score for m in minus if m.record.id not in reds) for h in minus
                        if h.record.id in reds)  # images tagged red sink
    image = photos / "coffee.jpg"
    mixed = tiny.search_mixed([(1.0, "red"), (2.0, image)], limit=3)
    assert set(mixed[0].scores) == {"text", "image"} and mixed[0].query == "red"
    with Image.open(image) as img:
        assert tiny.search_mixed([(1.0, img.convert("RGB"))], limit=1)[0].record.path == str(image)
    with pytest.raises(TypeError, match="a term is a text, a path or a PIL image"):
        tiny.search_mixed([(1.0, 42)])
    with pytest.raises(TypeError, match="weight must be a number"):
        tiny.search_mixed([("2", "red")])


def test_cli_and_http(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    run("index", str(photos))
    code, out, _ = run("search", "--combine", f'"red" + 2 * {photos / "coffee.jpg"}', "--json", "--limit", "2")
    assert code == 0 and len(json.loads(out)) == 2
    code, _, err = run("search", "--combine", '"red" +')
    assert code == 1 and "ends with an operator" in err

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from server_support import make_app

    with TestClient(make_app(tmp_path, tmp_path)) as client:
        ok = client.get("/api/v1/search/mixed", params={"query": '"red" - "blue" + photos/coffee.jpg', "limit": 3})
        assert ok.status_code == 200 and len(ok.json()) == 3 and "score" in ok.json()[0]
        outside = client.get("/api/v1/search/mixed", params={"query": '"red" + /etc/hostname.png'})
        assert outside.status_code == 403 and "outside the allowed roots" in outside.json()["message"]
        bad = client.get("/api/v1/search/mixed", params={"query": '"red" +'})
        assert bad.status_code == 400 and bad.json()["success"] is False
