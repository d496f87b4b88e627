"""Near-duplicates with the offline preset's real weights: real photos, their edited copies, and
different photos of similar scenes that must not be called duplicates."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageEnhance

from imgctx import Extractor
from imgctx.testing import sample_photo_path

pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytestmark = pytest.mark.models

NAMES = ("chelsea", "coffee", "motorcycle_left")
EDITS = ("resize", "jpeg", "crop", "brightness", "rotate", "webp", "text")


def _edited(img: Image.Image, kind: str, out: Path) -> Path:
    w, h = img.size
    if kind == "resize":
        img.resize((w // 2, h // 2), Image.Resampling.LANCZOS).save(out.with_suffix(".jpg"), quality=90)
    elif kind == "jpeg":
        img.save(out.with_suffix(".jpg"), quality=35)
    elif kind == "crop":
        img.crop((w // 25, h // 20, w - w // 25, h - h // 40)).save(out.with_suffix(".jpg"), quality=90)
    elif kind == "brightness":
        ImageEnhance.Brightness(img).enhance(0.82).save(out.with_suffix(".jpg"), quality=90)
    elif kind == "rotate":
        img.rotate(3, Image.Resampling.BICUBIC).save(out.with_suffix(".jpg"), quality=90)
    elif kind == "webp":
        img.save(out.with_suffix(".webp"), "WEBP")
        return out.with_suffix(".webp")
    elif kind == "text":
        copy = img.copy()
        ImageDraw.Draw(copy).text((w // 20, h - h // 8), "summer 2023", fill=(255, 255, 255))
        copy.save(out.with_suffix(".jpg"), quality=90)
    return out.with_suffix(".jpg")


@pytest.fixture(scope="module")
def edited_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos with seven edited copies each, and negatives: neighbouring tiles of the
    Hubble deep field and of a retina scan (the same kind of picture, not the same picture)."""
    folder = tmp_path_factory.mktemp("edited")
    for name in NAMES:
        with Image.open(sample_photo_path(name)) as im:
            img = im.convert("RGB")
        img.save(folder / f"{name}.jpg", quality=90)
        for kind in EDITS:
            _edited(img, kind, folder / f"{name}__{kind}")
    for name in ("hubble_deep_field", "retina"):
        with Image.open(sample_photo_path(name)) as im:
            big = im.convert("RGB")
        w, h = big.size
        big.crop((0, 0, w // 2, h // 2)).save(folder / f"other_{name}_a.jpg", quality=90)
        big.crop((w // 2, 0, w, h // 2)).save(folder / f"other_{name}_b.jpg", quality=90)
    return folder


def _family(path: str) -> str:
    return Path(path).name.split("__")[0].split(".")[0]


def test_edited_copies_group_with_their_original_and_nothing_else(offline_index: Extractor, edited_dir: Path) -> None:
    report = offline_index.find_duplicates(directory=edited_dir)
    assert report.failed_files == ()
    by_rep = {_family(g.representative_path): g for g in report.groups}
    for name in NAMES:
        group = by_rep[name]
        assert Path(group.representative_path).name == f"{name}.jpg"
        assert {_family(p) for p in group.paths} == {name}, f"{name}: a stranger in the group"
        kinds = {Path(p).stem.split("__")[1] for p in group.paths[1:]}
        assert kinds == set(EDITS), f"{name}: missed {set(EDITS) - kinds}"
    grouped = {Path(p).name for g in report.groups for p in g.paths}
    assert not {name for name in grouped if name.startswith("other_")}


def test_compare_separates_an_edit_from_a_similar_scene(offline_index: Extractor, edited_dir: Path) -> None:
    edit = offline_index.compare(edited_dir / "motorcycle_left.jpg", edited_dir / "motorcycle_left__crop.jpg")
    tiles = offline_index.compare(edited_dir / "other_hubble_deep_field_a.jpg",
                                  edited_dir / "other_hubble_deep_field_b.jpg")
    assert edit.is_duplicate and not tiles.is_duplicate and edit.similarity > tiles.similarity
    assert edit.embedding_cosine is not None and edit.embedding_cosine > 0.8
    assert tiles.embedding_cosine is not None and tiles.embedding_cosine > 0.8  # the embedding alone would be fooled
    assert tiles.phash_distance > 16  # the hashes are not


def test_check_image_finds_the_indexed_original(offline_index: Extractor, edited_dir: Path) -> None:
    """The session index holds the sample photos; an edited copy (not indexed) finds its original."""
    for kind in ("resize", "crop", "text"):
        path = next(edited_dir.glob(f"chelsea__{kind}.*"))
        matches = offline_index.check_image(path)
        assert [m.record.filename for m in matches] == ["chelsea.jpg"], kind
    assert offline_index.check_image(edited_dir / "other_retina_a.jpg") == []


def test_processing_a_byte_copy_reports_it(offline_index: Extractor, edited_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "chelsea_again.jpg"
    original = next(r for r in offline_index.list(limit=100) if r.filename == "chelsea.jpg")
    shutil.copy(original.path, copy)
    assert offline_index.check_image(copy)[0].comparison.exact
    with Extractor(settings=offline_index.settings.with_overrides(db_path=tmp_path / "db"),
                   image_embedder=offline_index.components.image_embedder,
                   text_embedder=offline_index.components.text_embedder,
                   tagger=offline_index.components.taggers) as ex:
        ex.process(original.path)
        result = ex.process(copy)
        assert result.was_duplicate and result.duplicate_of == ex.store.get_by_path(original.path).id
        group = ex.find_duplicates().groups[0]
        assert group.exact == (True,) and group.similarity_scores == (1.0,)
