"""Parquet shards for other tools: export a store, read the shards with pyarrow/pandas, import
them into other stores and get the same search results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet", reason="Parquet export needs pyarrow (the ray extra)")

from imgctx import (  # noqa: E402
    ConfigurationError,
    Extractor,
    IncompatibleIndexError,
    export_parquet,
    import_parquet,
)
from imgctx._migrate import open_store  # noqa: E402
from imgctx.testing import settings_for_tests  # noqa: E402


@pytest.fixture
def indexed(tmp_path: Path, photo_dir: Path) -> Extractor:
    ex = Extractor(settings=settings_for_tests(tmp_path / "src", preset="tiny"))
    report = ex.process_directory(photo_dir)
    assert report.failed == 0 and report.processed >= 6
    yield ex
    ex.close()


def test_shards_hold_records_and_a_column_per_space(indexed: Extractor, tmp_path: Path) -> None:
    report = export_parquet(indexed.store, tmp_path / "out", shard_rows=4)
    n = indexed.count()
    assert report.records == n and len(report.shards) == -(-n // 4)
    table = pq.read_table(tmp_path / "out")  # the folder, as Spark, DuckDB or Ray read it
    assert table.num_rows == n
    assert {"id", "path", "caption", "objects", "tags", "image_embedding", "text_embedding"} <= set(table.column_names)
    meta = json.loads(table.schema.metadata[b"imgctx"])
    assert [s["name"] for s in meta["spaces"]] == ["image", "text"]
    frame = table.to_pandas()
    image = np.stack(frame["image_embedding"].to_numpy())  # what autofaiss does with the column
    stored = indexed.store.vectors("image", list(frame["id"]))
    assert image.dtype == np.float32 and image.shape[0] == n
    for rid, vec in zip(frame["id"], image, strict=True):
        assert np.array_equal(vec, stored[rid])
    record = indexed.get(frame["id"][0])
    assert frame["caption"][0] == record.caption and list(frame["objects"][0]) == list(record.objects)


@pytest.mark.parametrize("kind", ["faiss", "memory", "qdrant"])
def test_import_into_another_store_gives_the_same_search(indexed: Extractor, tmp_path: Path, kind: str) -> None:
    if kind == "qdrant":
        pytest.importorskip("qdrant_client")
    export_parquet(indexed.store, tmp_path / "out", shard_rows=3)
    uri = {"faiss": f"faiss:{tmp_path / 'dst'}", "memory": "memory:", "qdrant": f"qdrant:{tmp_path / 'q'}"}[kind]
    settings = settings_for_tests(tmp_path / "dst", preset="tiny")
    store = open_store(uri, settings)
    report = import_parquet(tmp_path / "out", store, batch_size=2)
    assert report.records == indexed.count()
    with Extractor(settings=settings, store=store) as copy:
        assert copy.count() == indexed.count()
        for r in indexed.list(limit=1000):
            assert copy.get(r.id) == r  # every field, tags and times included
        for query in ("a cat", "red", "space rocket"):
            mine = [(h.record.id, round(h.score, 5)) for h in indexed.search(query, limit=5)]
            theirs = [(h.record.id, round(h.score, 5)) for h in copy.search(query, limit=5)]
            assert mine == theirs
        # importing again replaces, never duplicates
        import_parquet(tmp_path / "out", store)
        assert copy.count() == indexed.count()


def test_import_refuses_other_models_and_foreign_files(indexed: Extractor, tmp_path: Path) -> None:
    export_parquet(indexed.store, tmp_path / "out")
    with pytest.raises(ConfigurationError, match="already holds Parquet shards"):
        export_parquet(indexed.store, tmp_path / "out")
    other = open_store("memory:", settings_for_tests(tmp_path / "x", preset="tiny"))
    from imgctx import SpaceSpec

    other.configure([SpaceSpec("image", "some-other-model", 8), SpaceSpec("text", "x", 8)])
    with pytest.raises(IncompatibleIndexError):
        import_parquet(tmp_path / "out", other)
    import pyarrow as pa

    pq.write_table(pa.table({"a": [1]}), tmp_path / "foreign.parquet")
    with pytest.raises(ConfigurationError, match="not written by imgctx"):
        import_parquet(tmp_path / "foreign.parquet", open_store("memory:"))
    with pytest.raises(ConfigurationError, match="no such folder"):
        import_parquet(tmp_path / "missing", open_store("memory:"))


def test_cli_export_and_import(run, tmp_path: Path, photo_dir: Path) -> None:  # noqa: ANN001
    code, _, _ = run("index", str(photo_dir))
    assert code == 0
    code, out, _ = run("--json", "export", "--format", "parquet", str(tmp_path / "shards"), "--shard-size", "2")
    assert code == 0, out
    exported = json.loads(out)
    assert exported["records"] >= 6 and len(exported["shards"]) == -(-exported["records"] // 2)
    code, out, err = run("import", str(tmp_path / "shards"), "--to", f"faiss:{tmp_path / 'copy'}")
    assert code == 0, err
    assert f"imported {exported['records']} records" in out
    code, out, err = run("import", str(tmp_path / "nothing-here"))
    assert code == 1 and "no such folder" in err
