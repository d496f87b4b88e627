"""Text in images (RapidOCR), dominant colours and people (OpenCV) on real photos, alone and in
the pipeline with the filters they feed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from photo_support import sample, write_photo
from PIL import Image, ImageDraw, ImageFont

from imgctx import Extractor
from imgctx._backends.colors import DominantColors, dominant_colours
from imgctx._backends.composed import compose_caption
from imgctx._backends.ocr import RapidOcr
from imgctx._backends.people import OpenCvPeople
from imgctx._images import reduce
from imgctx._types import Tag
from imgctx.testing import settings_for_tests


def sign(text: str, size: tuple[int, int] = (900, 400)) -> Image.Image:
    """A shop sign: dark words on a light board, drawn with Pillow's bundled font."""
    img = Image.new("RGB", size, (235, 230, 215))
    draw = ImageDraw.Draw(img)
    draw.text((60, 140), text, fill=(20, 20, 30), font=ImageFont.load_default(size=90))
    return img


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("annotated")
    write_photo(d / "page.jpg", sample("page"))
    write_photo(d / "sign.jpg", sign("OPEN 24 HOURS"))
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        write_photo(d / f"{name}.jpg", sample(name))
    return d


@pytest.fixture(scope="module")
def ocr() -> RapidOcr:
    pytest.importorskip("rapidocr_onnxruntime")
    engine = RapidOcr()
    engine.load()
    return engine


def _small(path: Path) -> Image.Image:
    return reduce(Image.open(path).convert("RGB"), 256)


# -- OCR -------------------------------------------------------------------------------------------


def test_ocr_reads_a_printed_page_and_a_sign(ocr: RapidOcr, files: Path) -> None:
    paths = [files / "page.jpg", files / "sign.jpg"]
    found = ocr.annotate([_small(p) for p in paths], [str(p) for p in paths])
    page, board = (a.text for a in found)
    assert "segmentation" in page.lower() and "markers" in page.lower()
    assert "OPEN" in board.upper() and "24" in board and "HOURS" in board.upper()


def test_ocr_reads_only_where_its_detector_sees_text(ocr: RapidOcr, files: Path) -> None:
    names = ["astronaut.jpg", "coffee.jpg", "rocket.jpg", "sign.jpg"]
    before = dict(ocr.stats)
    found = ocr.annotate([_small(files / n) for n in names], [str(files / n) for n in names])
    assert [bool(a.text) for a in found] == [False, False, False, True]
    assert ocr.stats["probed"] - before["probed"] == 4
    assert ocr.stats["read"] - before["read"] == 1  # the photos without text were never read


# -- colours ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rgb", "name"), [
    ((200, 20, 20), "red"), ((10, 10, 10), "black"), ((20, 40, 200), "blue"), ((250, 250, 250), "white"),
    ((120, 70, 30), "brown"), ((240, 220, 30), "yellow"), ((30, 160, 40), "green"), ((128, 128, 128), "gray"),
    ((250, 140, 20), "orange"), ((230, 110, 190), "pink"), ((120, 40, 170), "purple"),
])
def test_plain_colours_get_their_names(rgb: tuple[int, int, int], name: str) -> None:
    assert dominant_colours(Image.new("RGB", (40, 30), rgb)) == (name,)


def test_colours_of_real_photos_most_covering_first() -> None:
    half = Image.new("RGB", (100, 100), (10, 10, 10))
    half.paste((200, 20, 20), (0, 0, 100, 70))
    assert dominant_colours(half) == ("red", "black")
    assert dominant_colours(sample("hubble_deep_field")) == ("black",)
    assert "brown" in dominant_colours(sample("chelsea"))
    many = DominantColors(max_colors=1).annotate([sample("astronaut")], [""])[0].colors
    assert many is not None and len(many) == 1


# -- people ----------------------------------------------------------------------------------------


def test_people_and_faces_without_identity(files: Path) -> None:
    pytest.importorskip("cv2")
    people = OpenCvPeople()
    names = ["astronaut.jpg", "coffee.jpg", "rocket.jpg", "page.jpg"]
    found = people.annotate([_small(files / n) for n in names], [str(files / n) for n in names])
    assert [a.people for a in found] == [1, 0, 0, 0]
    assert {t.label for t in found[0].tags} == {"person", "face"}
    assert found[1].tags == ()


def test_composed_caption_names_people_first() -> None:
    tags = [Tag("barbell", 0.3), Tag("equipment", 0.3, coarse=True), Tag("person", 1.0, coarse=True)]
    assert compose_caption(tags).startswith("a photo of a person: barbell")
    assert compose_caption([*tags, Tag("people", 1.0, coarse=True)]).startswith("a photo of people")


# -- in the pipeline, with the filters -----------------------------------------------------------


@pytest.fixture(scope="module")
def indexed(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extractor]:
    pytest.importorskip("rapidocr_onnxruntime")
    pytest.importorskip("cv2")
    db = tmp_path_factory.mktemp("annotated-db")
    with Extractor(settings=settings_for_tests(db, preset="tiny"),
                   annotators=["colors", "opencv-people", "rapidocr"]) as ex:
        report = ex.process_directory(files)
        assert report.failed == 0 and report.processed == 6
        yield ex


def _names(items: list) -> list[str]:
    return sorted(getattr(i, "record", i).filename for i in items)


def test_text_is_stored_filterable_and_searchable(indexed: Extractor) -> None:
    assert _names(indexed.list(has_text=True)) == ["page.jpg", "sign.jpg"]
    assert _names(indexed.list(text_contains="open")) == ["sign.jpg"]  # case-insensitive
    assert indexed.count(has_text=False) == 4
    assert indexed.search("open", limit=1)[0].record.filename == "sign.jpg"
    assert indexed.search("region based segmentation markers", limit=1)[0].record.filename == "page.jpg"


def test_people_and_colours_are_stored_and_filterable(indexed: Extractor) -> None:
    assert _names(indexed.list(has_people=True)) == ["astronaut.jpg"]
    assert _names(indexed.list(objects="person")) == ["astronaut.jpg"]
    astronaut = indexed.list(has_people=True)[0]
    assert astronaut.people == 1 and "face" in astronaut.objects
    assert "chelsea.jpg" in _names(indexed.list(colors="brown"))
    assert _names(indexed.search("photo", colors=["brown"], has_people=False, limit=10)) == _names(
        indexed.list(colors="brown", has_people=False))
