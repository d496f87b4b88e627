"""The batched ingest pipeline: batches, one transaction per batch, isolation of failures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imgctx import Extractor, Tag
from imgctx._pipeline import merge_tags, text_document
from imgctx.testing import TinyColorTagger, TinyImageEmbedder, settings_for_tests


def _images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


class CountingStore:
    """Wraps a real store and counts write transactions."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.upserts: list[int] = []

    def upsert(self, items: Sequence[Any]) -> None:
        self.upserts.append(len(items))
        self.inner.upsert(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_models_run_per_batch_and_one_transaction_per_batch(tmp_path: Path) -> None:
    from imgctx._backends.faiss_store import FaissStore

    paths = _images(tmp_path / "imgs", 10)
    store = CountingStore(FaissStore(tmp_path / "db"))
    embedder = TinyImageEmbedder()
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny", batch_size=4),
                   image_embedder=embedder, store=store) as ex:
        report = ex.process_many(paths)
    assert report.processed == 10
    assert store.upserts == [4, 4, 2]
    assert embedder.calls == 3


class AnalyzingModel(TinyImageEmbedder):
    """A backend that is both tagger and embedder, with a one-pass ``analyze``."""

    name = "analyzing"

    def __init__(self) -> None:
        super().__init__()
        self.analyze_calls = 0
        self.tagger = TinyColorTagger()

    def analyze(self, images: Sequence[Any]) -> tuple[list[list[Tag]], np.ndarray]:
        self.analyze_calls += 1
        return self.tagger.tag(images), super().embed_images(images)

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        raise AssertionError("the pipeline should use analyze()")

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        raise AssertionError("the pipeline should use analyze()")


def test_shared_tagger_embedder_runs_once_per_batch(tmp_path: Path) -> None:
    model = AnalyzingModel()
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny", batch_size=8),
                   image_embedder=model, tagger=model, store="memory") as ex:
        report = ex.process_many(_images(tmp_path / "imgs", 5))
        assert report.processed == 5 and model.analyze_calls == 1
        assert ex.list()[0].objects


class PickyTagger(TinyColorTagger):
    """Fails on any batch that holds a pure-blue image."""

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        if any(img.getpixel((0, 0)) == (0, 0, 255) for img in images):
            raise RuntimeError("model exploded")
        return super().tag(images)


def test_a_model_failure_fails_only_that_file(tmp_path: Path) -> None:
    paths = _images(tmp_path / "imgs", 6)
    Image.new("RGB", (24, 24), (0, 0, 255)).save(paths[2])
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny", batch_size=4),
                   tagger=PickyTagger(), store="memory") as ex:
        report = ex.process_many(paths)
    assert report.processed == 5 and report.failed == 1
    assert report.failed_files[0].path == str(paths[2])
    assert "model exploded" in report.failed_files[0].reason


def test_identical_files_in_one_batch_run_the_models_once(tmp_path: Path) -> None:
    folder = tmp_path / "dups"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (16, 16), (1, 2, 3)).save(folder / name)
    embedder = TinyImageEmbedder()
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), image_embedder=embedder,
                   store="memory") as ex:
        report = ex.process_directory(folder)
    assert report.processed == 3
    dup_flags = [(Path(r.record.path).name, r.was_duplicate) for r in report.results]
    assert dup_flags == [("a.png", False), ("b.png", True), ("c.png", True)]
    assert report.results[1].duplicate_of == report.results[0].record.id


def test_merge_tags_and_text_document() -> None:
    merged = merge_tags([[Tag("Cat", 0.5)], [Tag("cat", 0.9), Tag("dog", 0.2)]])
    assert merged == [Tag("cat", 0.9), Tag("dog", 0.2)]
    assert merge_tags([[Tag("B", 0.1), Tag("a", 0.9)]]) == [Tag("b", 0.1), Tag("a", 0.9)]
    tags = [Tag("lynx", 0.05, confident=False), Tag("cat", 0.9, coarse=True), Tag("tabby", 0.6)]
    assert text_document("a cat on a mat", tags) == "a cat on a mat. cat, tabby, lynx"
    assert text_document(None, tags) == "cat, tabby, lynx"
    assert text_document("nothing", []) == "nothing"
    assert merge_tags([[Tag("x", 0.9, confident=False)], [Tag("x", 0.2)], [Tag("y", 0.5, confident=False)]]) == [
        Tag("x", 0.2), Tag("y", 0.5, confident=False)]


def test_candidate_tags_feed_text_search_but_are_not_objects(tmp_path: Path) -> None:
    class HedgingTagger(TinyColorTagger):
        def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
            return [[Tag("red", 0.9), Tag("zebra", 0.05, confident=False)] for _ in images]

    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), tagger=HedgingTagger(),
                   store="memory") as ex:
        ex.process_many(_images(tmp_path / "imgs", 1))
        record = ex.list()[0]
        assert record.objects == ("red",) and [t.label for t in record.tags] == ["red"]
        assert ex.count(objects="zebra") == 0
        assert ex.search("zebra")[0].score > 0.5  # the candidate's word is in the text vector


@pytest.mark.parametrize("workers", [1, 3])
def test_results_keep_input_order_whatever_the_workers(tmp_path: Path, workers: int) -> None:
    paths = _images(tmp_path / "imgs", 7)
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny", decode_workers=workers,
                                               batch_size=3), store="memory") as ex:
        report = ex.process_many(paths)
    assert [r.record.path for r in report.results] == [str(p) for p in paths]
    more = _images(tmp_path / "more", 9)[7:]  # two new files around already indexed ones
    with Extractor(settings=settings_for_tests(tmp_path / "db2", preset="tiny", batch_size=3)) as ex:
        ex.process_many(paths[2:5])
        mixed = [more[0], *paths, more[1]]
        report = ex.process_many(mixed)
    assert [r.record.path for r in report.results] == [str(p) for p in mixed]
    assert [r.skipped for r in report.results] == [False, False, False, True, True, True, False, False, False]
