"""A FAISS index file damaged on disk (same size, still readable) is noticed by its checksum and
rebuilt from SQLite, so searches never answer with unrelated ids (issue 11, item 7)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("faiss")

from imgctx import Extractor  # noqa: E402
from imgctx.testing import settings_for_tests  # noqa: E402


def test_a_damaged_index_file_is_rebuilt_from_sqlite(tmp_path: Path, photo_dir: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    queries = ("dark blue", "red", "a cat", "rocket", "coffee")
    with Extractor(settings=settings) as ex:
        ex.process_directory(photo_dir)
        expected = {q: [(h.record.id, round(h.score, 5)) for h in ex.search(q, limit=3)] for q in queries}
        blobs = {space: [row[0] for row in ex.store._conn.execute(
            "SELECT vec FROM vectors WHERE space = ? ORDER BY rid", (space,))] for space in ex.store.spaces}
    # a flat index holds the vectors in rowid order: move each under another record's id,
    # keeping the file's size and format (it still loads)
    for space, vectors in blobs.items():
        index_file = tmp_path / "db" / f"image_contexts.{space}.faiss"
        data = index_file.read_bytes()
        stored = b"".join(vectors)
        start = data.find(stored)
        assert start > 0 and len(vectors) >= 3
        damaged = data[:start] + b"".join(vectors[1:] + vectors[:1]) + data[start + len(stored):]
        assert len(damaged) == len(data)
        index_file.write_bytes(damaged)
    with Extractor(settings=settings) as ex:
        got = {q: [(h.record.id, round(h.score, 5)) for h in ex.search(q, limit=3)] for q in queries}
    assert got == expected
    assert "does not match its checksum" in caplog.text
