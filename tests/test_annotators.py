"""Text in images (RapidOCR), dominant colours and people (OpenCV) on real photos, alone and in
the pipeline with the filters they feed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from photo_support import sample, write_photo
from PIL import Image, ImageDraw, ImageFont

from imgctx import Extractor
from imgctx._backends import people as people_module
from imgctx._backends.colors import DominantColors, dominant_colours
from imgctx._backends.composed import compose_caption
from imgctx._backends.ocr import RapidOcr, read_order
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


def test_ocr_bounds_what_it_reads(files: Path) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    page = [_small(files / "page.jpg")], [str(files / "page.jpg")]
    few = RapidOcr(max_lines=2)
    lines = few.annotate(*page)[0].text.splitlines()
    assert len(lines) == 2  # the page has seven; only the two tallest are read
    tiny = RapidOcr(min_line_height=400)  # no line of the sign is that high: nothing is read
    assert tiny.annotate([_small(files / "sign.jpg")], [str(files / "sign.jpg")])[0].text == ""
    assert tiny.stats["read"] == 1  # the quick pass still saw text


def test_ocr_finds_lines_on_a_reduced_copy_and_reads_them_at_full_size(ocr: RapidOcr, files: Path) -> None:
    page = Image.open(files / "page.jpg").convert("RGB")
    page = page.resize((page.width * 5 // 2, page.height * 5 // 2), Image.Resampling.LANCZOS)  # 960 x 477
    bgr = np.ascontiguousarray(np.asarray(page)[:, :, ::-1])
    assert ocr.det_side == 640 and max(bgr.shape) > ocr.det_side
    boxes = ocr.find_lines(bgr)
    assert len(boxes) >= 6
    assert max(float(np.max(b[:, 0])) for b in boxes) > ocr.det_side * 0.8  # in the full image's pixels
    texts = " ".join(t for _, t, _ in ocr.read_lines(bgr)).lower()
    assert "segmentation" in texts and "markers" in texts and "background" in texts


def test_reading_order_with_lines_of_different_heights() -> None:
    def box(x: float, top: float, bottom: float) -> list[list[float]]:
        return [[x, top], [x + 100, top], [x + 100, bottom], [x, bottom]]

    # a title 40 px high above a line 60 px high that starts further left: they must not share a row
    lines = [(box(50, 100, 140), "title", 0.9), (box(0, 150, 210), "body", 0.9),
             (box(300, 155, 205), "right", 0.9), (box(10, 300, 340), "last", 0.9)]
    assert read_order(lines) == ["title", "body", "right", "last"]
    assert read_order(list(reversed(lines))) == ["title", "body", "right", "last"]
    assert read_order([]) == []


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


def test_people_are_found_on_the_decoded_picture(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cv2")
    decodes: list[str] = []

    def load_upright(path: str, side: int, fallback: Image.Image) -> Image.Image:
        decodes.append(path)
        return fallback

    monkeypatch.setattr(people_module, "load_upright", load_upright)
    people = OpenCvPeople()
    astronaut = str(files / "astronaut.jpg")
    wide = reduce(sample("astronaut").crop((0, 0, 512, 340)), 224)  # 337 x 224, as a model decodes it
    found = people.annotate([wide], [astronaut])[0]
    assert found.people == 1 and decodes == []  # large enough: the file is not decoded again
    tiny = Image.open(files / "astronaut.jpg").convert("RGB").resize((160, 160))
    people.annotate([tiny], [astronaut])
    assert decodes == [astronaut]  # far below the 320 px asked for: decoded again at 320


def test_two_people_side_by_side() -> None:
    pytest.importorskip("cv2")
    two = Image.new("RGB", (1024, 512))
    two.paste(sample("astronaut"), (0, 0))
    two.paste(sample("astronaut"), (512, 0))
    found = OpenCvPeople().annotate([reduce(two, 256)], [""])[0]
    assert found.people == 2 and {t.label for t in found.tags} == {"person", "people", "face"}


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
