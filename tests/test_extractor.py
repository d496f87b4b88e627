"""The Extractor end to end with the weight-free tiny models and the real faiss store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgctx import (
    ConfigurationError,
    Extractor,
    ImageNotFoundError,
    ImgctxError,
    IncompatibleIndexError,
    InvalidImageError,
    PluginNotFoundError,
    Progress,
    RecordNotFoundError,
    _cli_json,
)
from imgctx.testing import TinyImageEmbedder, TinyTextEmbedder, settings_for_tests


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    return folder


def test_process_returns_the_contract_fields(tiny: Extractor, photos: Path) -> None:
    result = tiny.process(photos / "chelsea.jpg")
    info = _cli_json.image_info(result.record)
    assert set(info) == {"id", "path", "filename", "size", "file_size", "format", "caption", "objects"}
    assert info["path"] == str(photos / "chelsea.jpg")
    assert info["filename"] == "chelsea.jpg"
    assert info["size"] == [451, 300]
    assert info["file_size"] == (photos / "chelsea.jpg").stat().st_size
    assert info["format"] == "JPEG"
    assert info["caption"] and info["objects"]
    assert len(result.record.content_hash) == 64 and len(result.record.phash) == 16
    assert result.record.created_at.tzinfo is not None
    assert not result.was_duplicate and not result.skipped
    assert tiny.get(result.record.id) == result.record


def test_same_unchanged_file_twice_is_one_record(tiny: Extractor, photos: Path) -> None:
    first = tiny.process(photos / "coffee.jpg")
    again = tiny.process(photos / "coffee.jpg")
    assert again.record.id == first.record.id
    assert again.was_duplicate and again.skipped and again.duplicate_of is None
    assert tiny.count() == 1
    forced = tiny.process(photos / "coffee.jpg", force=True)
    assert not forced.skipped and tiny.count() == 1
    assert forced.record.created_at == first.record.created_at


def test_copy_at_another_path_is_reported_and_reuses_outputs(tiny: Extractor, photos: Path) -> None:
    embedder = tiny.components.image_embedder
    first = tiny.process(photos / "coffee.jpg")
    calls = embedder.calls
    shutil.copy(photos / "coffee.jpg", photos / "coffee-copy.jpg")
    copy = tiny.process(photos / "coffee-copy.jpg")
    assert copy.was_duplicate and not copy.skipped
    assert copy.duplicate_of == first.record.id
    assert copy.record.id != first.record.id and copy.record.caption == first.record.caption
    assert embedder.calls == calls  # no model ran for the copy
    assert tiny.count() == 2


def test_changed_file_is_reprocessed(tiny: Extractor, photos: Path) -> None:
    path = photos / "chelsea.jpg"
    first = tiny.process(path)
    Image.new("RGB", (40, 30), (0, 0, 255)).save(path, "JPEG")
    second = tiny.process(path)
    assert not second.skipped and not second.was_duplicate
    assert second.record.id == first.record.id
    assert second.record.content_hash != first.record.content_hash
    assert second.record.size == (40, 30)
    assert tiny.count() == 1


def test_directory_run_reports_failures_and_goes_on(tiny: Extractor, photos: Path) -> None:
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "empty.png").write_bytes(b"")
    (photos / "text.gif").write_text("hello")
    seen: list[Progress] = []
    report = tiny.process_directory(photos, progress=seen.append)
    assert report.total_files == 9
    assert report.processed == 6 and report.failed == 3 and report.skipped == 0
    assert len(report.processed_ids) == 6
    reasons = {Path(f.path).name: f.reason for f in report.failed_files}
    assert set(reasons) == {"corrupt.jpg", "empty.png", "text.gif"}
    assert "empty" in reasons["empty.png"] and "not a supported image format" in reasons["text.gif"]
    assert [p.done for p in seen] == list(range(1, 10)) and seen[-1].percent == 100.0
    again = tiny.process_directory(photos)
    assert again.processed == 0 and again.skipped == 6 and again.failed == 3
    assert _cli_json.batch(report)["failed_files"][0].keys() == {"path", "reason"}


def test_recursive_directory(tiny: Extractor, photos: Path) -> None:
    sub = photos / "sub"
    sub.mkdir()
    Image.new("RGB", (30, 30), (10, 200, 10)).save(sub / "green.png")
    assert tiny.process_directory(photos).total_files == 6
    assert tiny.process_directory(photos, recursive=True).processed == 1


def test_single_file_errors_raise(tiny: Extractor, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        tiny.process(tmp_path / "missing.jpg")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(InvalidImageError):
        tiny.process(bad)
    with pytest.raises(ImageNotFoundError):
        tiny.process_directory(tmp_path / "nodir")
    assert tiny.count() == 0


def test_search_scores_objects_and_min_score(tiny: Extractor, tmp_path: Path) -> None:
    folder = tmp_path / "colours"
    folder.mkdir()
    for name, rgb in {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}.items():
        Image.new("RGB", (32, 32), rgb).save(folder / f"{name}.png")
    tiny.process_directory(folder)
    hits = tiny.search("green", limit=3)
    assert hits[0].record.filename == "green.png"
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert hits[0].distance == pytest.approx(1 - hits[0].score)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert {h.record.filename for h in tiny.search("colour", objects="red,BLUE")} == {"red.png", "blue.png"}
    cutoff = hits[0].score - 1e-6
    assert [h.record.filename for h in tiny.search("green", min_score=cutoff)] == ["green.png"]
    assert tiny.search("green", objects=["unicorn"]) == []
    with pytest.raises(ConfigurationError):
        tiny.search("   ")


def test_search_image_by_path_and_by_pil(tiny: Extractor, tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    for name, rgb in {"red": (230, 20, 20), "blue": (20, 20, 230)}.items():
        Image.new("RGB", (32, 32), rgb).save(folder / f"{name}.png")
    tiny.process_directory(folder)
    by_pil = tiny.search_image(Image.new("RGB", (50, 50), (220, 30, 30)), limit=1)
    assert by_pil[0].record.filename == "red.png" and by_pil[0].score > 0.9
    by_path = tiny.search_image(folder / "red.png", limit=5)
    assert "red.png" not in {h.record.filename for h in by_path}  # itself excluded
    with_self = tiny.search_image(folder / "red.png", limit=1, exclude_self=False)
    assert with_self[0].record.filename == "red.png"


def test_a_query_image_is_seen_as_indexed_pictures_are_with_its_borders_trimmed(
        tiny: Extractor, tmp_path: Path) -> None:
    """Indexing trims uniform borders before the models see a picture; a query by the same file
    (or the same picture as a PIL image) must be trimmed too, or it no longer finds itself."""
    folder = tmp_path / "framed"
    folder.mkdir()
    for name, (frame, inner) in {"a": ((250, 250, 250), (200, 30, 30)),
                                 "b": ((200, 30, 30), (250, 250, 250))}.items():
        img = Image.new("RGB", (60, 60), frame)
        img.paste(Image.new("RGB", (20, 30), inner), (5, 20))  # a wide uniform frame round a patch
        img.save(folder / f"{name}.png")
    tiny.process_directory(folder)
    for name in ("a", "b"):
        hit = tiny.search_image(folder / f"{name}.png", limit=1, exclude_self=False)[0]
        assert hit.record.filename == f"{name}.png" and hit.score > 0.999
        by_pil = tiny.search_image(Image.open(folder / f"{name}.png"), limit=1)[0]
        assert by_pil.record.filename == f"{name}.png" and by_pil.score > 0.999
        mixed = tiny.search_mixed([(1.0, folder / f"{name}.png")], limit=1)[0]
        assert mixed.record.filename == f"{name}.png"


def test_list_get_delete(tiny: Extractor, photos: Path) -> None:
    report = tiny.process_directory(photos)
    listed = tiny.list(limit=4)
    assert len(listed) == 4 and tiny.list(limit=4, offset=4)[0].id not in {r.id for r in listed}
    victim = tiny.get(report.processed_ids[0])
    removed = tiny.delete(victim.id)
    assert removed.id == victim.id and tiny.count() == 5 and Path(victim.path).exists()
    with pytest.raises(RecordNotFoundError):
        tiny.get(victim.id)
    with pytest.raises(RecordNotFoundError):
        tiny.delete(victim.id)
    other = tiny.get(report.processed_ids[1])
    tiny.delete(other.id, delete_file=True)
    assert not Path(other.path).exists()
    with pytest.raises(ConfigurationError):
        tiny.list(limit=-1)


def test_models_status_and_preload(tiny: Extractor) -> None:
    status = tiny.models.status()
    assert {"captioner", "image_embedder", "text_embedder", "tagger"} <= set(status)
    assert status["image_embedder"].name == "tiny-image"
    timings = tiny.models.preload()
    assert "total" in timings and all(t >= 0 for t in timings.values())


def test_selection_by_instance_and_unknown_names(tmp_path: Path) -> None:
    text = TinyTextEmbedder()
    with Extractor(settings=settings_for_tests(tmp_path / "a", preset="tiny"), text_embedder=text,
                   store="memory") as ex:
        assert ex.components.text_embedder is text
    with pytest.raises(PluginNotFoundError, match="known text embedders: .*minilm"):
        Extractor(settings=settings_for_tests(tmp_path / "b", preset="tiny"), text_embedder="nope")
    with pytest.raises(ConfigurationError, match="unknown preset 'nope'; known presets: offline"):
        Extractor(settings=settings_for_tests(tmp_path / "c"), preset="nope")


def test_opening_a_store_with_other_models_is_a_clear_error(tmp_path: Path, photos: Path) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings) as ex:
        ex.process(photos / "rocket.jpg")

    class OtherEmbedder(TinyImageEmbedder):
        name = "other-image"

    with pytest.raises(IncompatibleIndexError, match="tiny-image.*other-image"):
        Extractor(settings=settings, image_embedder=OtherEmbedder())


def test_two_extractors_with_different_models_live_side_by_side(tmp_path: Path, photos: Path) -> None:
    a = Extractor(settings=settings_for_tests(tmp_path / "a", preset="tiny"))
    b = Extractor(settings=settings_for_tests(tmp_path / "b", preset="tiny"), store="memory",
                  text_embedder=TinyTextEmbedder())
    assert a.components.text_embedder is not b.components.text_embedder
    a.process(photos / "rocket.jpg")
    assert a.count() == 1 and b.count() == 0
    a.close()
    b.close()


def test_closed_extractor_refuses_work(tmp_path: Path, photos: Path) -> None:
    ex = Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"))
    ex.close()
    ex.close()  # idempotent
    for call in (lambda: ex.process(photos / "rocket.jpg"), lambda: ex.search("x"), ex.count,
                 lambda: ex.list(), lambda: ex.get("x")):
        with pytest.raises(ImgctxError, match="closed"):
            call()


def test_records_survive_reopening(tmp_path: Path, photos: Path) -> None:
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings) as ex:
        ids = ex.process_directory(photos).processed_ids
    with Extractor(settings=settings) as ex:
        assert ex.count() == len(ids)
        assert ex.search("red", limit=50) and {h.record.id for h in ex.search("red", limit=50)} <= set(ids)


def test_one_file_given_two_ways_is_one_record(tiny: Extractor, photos: Path) -> None:
    odd = photos / ".." / photos.name / "rocket.jpg"
    report = tiny.process_many([photos / "rocket.jpg", odd, photos / "rocket.jpg"])
    assert report.total_files == 1 and report.processed == 1
    assert tiny.count() == 1 and tiny.list()[0].path == str(photos / "rocket.jpg")


def test_force_still_reports_known_bytes(tiny: Extractor, photos: Path) -> None:
    tiny.process(photos / "rocket.jpg")
    forced = tiny.process(photos / "rocket.jpg", force=True)
    assert forced.was_duplicate and not forced.skipped and forced.duplicate_of is None


@pytest.mark.parametrize(("kwargs", "message"), [({"limit": -1}, "limit"), ({"min_score": 1.5}, "min_score")])
def test_search_arguments_are_checked(tiny: Extractor, kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        tiny.search("red", **kwargs)
    with pytest.raises(ConfigurationError, match=message):
        tiny.search_image(Image.new("RGB", (8, 8)), **kwargs)


def test_a_file_name_that_is_not_utf8_fails_alone(tiny: Extractor, photos: Path) -> None:
    import os
    import sys

    if sys.platform != "linux":
        pytest.skip("needs a file system that accepts arbitrary bytes in names")
    raw = os.fsencode(photos) + b"/caf\xe9.jpg"
    with open(photos / "rocket.jpg", "rb") as src, open(raw, "wb") as dst:
        dst.write(src.read())
    report = tiny.process_directory(photos)
    assert report.processed == 6 and report.failed == 1
    assert "not valid UTF-8" in report.failed_files[0].reason


def test_search_image_excludes_its_own_path_even_after_an_edit(tiny: Extractor, photos: Path) -> None:
    tiny.process_directory(photos)
    Image.new("RGB", (40, 40), (9, 9, 9)).save(photos / "rocket.jpg", "JPEG")
    hits = tiny.search_image(photos / "rocket.jpg", limit=10)
    assert "rocket.jpg" not in {h.record.filename for h in hits}


def test_wrong_argument_types_are_clear_errors(tiny: Extractor, photos: Path) -> None:
    with pytest.raises(ConfigurationError, match="PIL image"):
        tiny.search_image(b"\x89PNG...")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="list of paths"):
        tiny.process_many(str(photos / "rocket.jpg"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="integer"):
        tiny.search("red", limit=2.5)  # type: ignore[arg-type]


class ColourWordsEmbedder(TinyImageEmbedder):
    """A cross-modal stand-in: colour names embed to the histogram of a pure swatch."""

    name = "colour-words"
    cross_modal = True

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        swatches = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
        colours = [next((c for w, c in swatches.items() if w in t.lower()), (128, 128, 128)) for t in texts]
        return self.embed_images([Image.new("RGB", (8, 8), c) for c in colours])


def test_cross_modal_search_fuses_both_spaces_by_weight(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    for name, rgb in {"red": (230, 20, 20), "blue": (20, 20, 230)}.items():
        Image.new("RGB", (32, 32), rgb).save(folder / f"{name}.png")
    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings, image_embedder=ColourWordsEmbedder(), store="memory") as ex:
        ex.process_directory(folder)
        hit = ex.search("something red", limit=1)[0]
        assert hit.record.filename == "red.png" and set(hit.scores) == {"text", "image"}
        assert hit.scores["image"] == pytest.approx(1.0, abs=1e-5)
        assert hit.score == pytest.approx((hit.scores["text"] + hit.scores["image"]) / 2)
        ex.space_weights = {"image": 3.0, "text": 1.0}
        weighted = ex.search("something red", limit=1)[0]
        assert weighted.score == pytest.approx((weighted.scores["text"] + 3 * weighted.scores["image"]) / 4)
        ex.space_weights = {"image": 0.0, "text": 1.0}
        assert set(ex.search("something red", limit=1)[0].scores) == {"text"}


def test_search_pages_with_offset_and_finds_more_like_a_record(tiny: Extractor, photos: Path) -> None:
    tiny.process_directory(photos)
    everything = tiny.search("a photo", limit=6)
    pages = tiny.search("a photo", limit=2) + tiny.search("a photo", limit=2, offset=2) \
        + tiny.search("a photo", limit=2, offset=4)
    assert [h.record.id for h in pages] == [h.record.id for h in everything]
    assert tiny.search("a photo", limit=2, offset=6) == []
    with pytest.raises(ConfigurationError, match="offset"):
        tiny.search("a photo", offset=-1)
    cat = next(r for r in tiny.list() if r.filename == "chelsea.jpg")
    similar = tiny.search_similar(cat.id, limit=5)
    assert len(similar) == 5 and cat.id not in {h.record.id for h in similar}
    by_path = tiny.search_image(cat.path, limit=5)
    assert [h.record.id for h in similar] == [h.record.id for h in by_path]
    assert [h.scores["image"] for h in similar] == pytest.approx([h.scores["image"] for h in by_path], abs=1e-5)
    assert [h.record.id for h in tiny.search_similar(cat.id, limit=2, offset=1)] == [h.record.id for h in similar[1:3]]
    with pytest.raises(RecordNotFoundError):
        tiny.search_similar("no-such-id")


def test_object_counts_are_most_common_first(tiny: Extractor, photos: Path) -> None:
    assert tiny.object_counts() == {}
    tiny.process_directory(photos)
    counts = tiny.object_counts()
    assert counts and list(counts.values()) == sorted(counts.values(), reverse=True)
    for label, n in counts.items():
        assert tiny.count(objects=[label]) == n
