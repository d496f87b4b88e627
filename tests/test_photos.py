"""Photo metadata from real EXIF written into real photos, places of known cities, and the photo
filters in the library, every local store, the CLI and the HTTP API."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from photo_support import NEW_YORK, PARIS, SYDNEY, TOKYO, sample, write_photo
from PIL import Image

from imgctx import ConfigurationError, Extractor, PhotoInfo
from imgctx._backends.faiss_store import FaissStore
from imgctx._backends.photo_metadata import PhotoMetadata, parse_exif_datetime, read_photo_info
from imgctx._backends.places import ReverseGeocoder
from imgctx._images import load_image
from imgctx.testing import settings_for_tests

pytest.importorskip("reverse_geocoder")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real photos: four with EXIF and GPS of known cities, one with a camera only, one
    without EXIF."""
    d = tmp_path_factory.mktemp("exif")
    write_photo(d / "paris.jpg", sample("astronaut"), taken="2021:07:14 18:30:05", offset="+02:00",
                make="Canon", model="Canon EOS R5", lens="RF24-70mm F2.8 L IS USM", gps=PARIS, altitude=35.5,
                iso=400, exposure=(1, 250), focal=35.0, f_number=2.8)
    write_photo(d / "tokyo.jpg", sample("coffee"), taken="2019:01:02 08:00:00", make="NIKON CORPORATION",
                model="NIKON D750", gps=TOKYO)
    write_photo(d / "sydney.jpg", sample("rocket"), taken="2023:03:01 12:00:00", offset="+11:00",
                make="Apple", model="iPhone 12", gps=SYDNEY, altitude=-4.0)
    write_photo(d / "newyork.jpg", sample("chelsea"), taken="2020:01:01 00:00:00", gps=NEW_YORK)
    write_photo(d / "camera_only.jpg", sample("camera"), make="FUJIFILM", model="X-T4")
    write_photo(d / "plain.jpg", sample("page"))
    return d


@pytest.fixture(scope="module")
def metadata() -> PhotoMetadata:
    """One annotator for the module, so the geocoder's data loads once."""
    annotator = PhotoMetadata()
    annotator.load()
    return annotator


def _extractor(db: Path, store: str = "faiss", annotators: tuple[str, ...] = ("photo-metadata", "colors")) -> Extractor:
    return Extractor(settings=settings_for_tests(db, preset="tiny"), store=store, annotators=list(annotators))


def _names(records: list) -> list[str]:
    return sorted(getattr(r, "record", r).filename for r in records)


# -- EXIF ------------------------------------------------------------------------------------------


def test_every_exif_field_is_read(photos: Path) -> None:
    info = read_photo_info(str(photos / "paris.jpg"))
    assert info is not None
    assert info.taken_at == datetime(2021, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert (info.camera_make, info.camera_model, info.camera) == ("Canon", "Canon EOS R5", "Canon EOS R5")
    assert info.lens == "RF24-70mm F2.8 L IS USM"
    assert (info.focal_length, info.exposure_time, info.f_number, info.iso) == (35.0, 0.004, 2.8, 400)
    assert info.latitude == pytest.approx(PARIS[0], abs=1e-4) and info.longitude == pytest.approx(PARIS[1], abs=1e-4)
    assert info.altitude == pytest.approx(35.5)


def test_southern_western_below_sea_level_and_no_offset(photos: Path) -> None:
    sydney = read_photo_info(str(photos / "sydney.jpg"))
    assert sydney.latitude == pytest.approx(SYDNEY[0], abs=1e-4) and sydney.altitude == pytest.approx(-4.0)
    assert sydney.camera == "Apple iPhone 12"
    ny = read_photo_info(str(photos / "newyork.jpg"))
    assert ny.longitude == pytest.approx(NEW_YORK[1], abs=1e-4) and ny.camera is None
    tokyo = read_photo_info(str(photos / "tokyo.jpg"))
    assert tokyo.taken_at == datetime(2019, 1, 2, 8, 0) and tokyo.taken_at.tzinfo is None
    assert tokyo.camera == "NIKON D750"  # the make is left out when the model starts with it


def test_files_without_or_with_broken_exif(photos: Path, tmp_path: Path) -> None:
    assert read_photo_info(str(photos / "plain.jpg")) is None
    png = tmp_path / "a.png"
    sample("coins").save(png)
    assert read_photo_info(str(png)) is None
    broken = tmp_path / "broken.jpg"
    sample("coffee").save(broken, "JPEG", exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f garbage")
    assert read_photo_info(str(broken)) is None
    assert parse_exif_datetime("0000:00:00 00:00:00") is None and parse_exif_datetime(None) is None


def test_exif_comes_from_the_decoded_picture_without_opening_the_file(photos: Path, tmp_path: Path) -> None:
    # the pipeline's decoder keeps the EXIF block through its rotation and resizing: read from it,
    # the file is not opened again (here it is gone by then)
    moved = tmp_path / "paris.jpg"
    shutil.copy(photos / "paris.jpg", moved)
    decoded = load_image(moved, 10**8, 10**8, 224).image
    moved.unlink()
    info = read_photo_info(str(moved), decoded)
    assert info is not None and info.camera_model == "Canon EOS R5" and info.iso == 400
    assert info.latitude == pytest.approx(PARIS[0], abs=1e-4)
    # a photo stored sideways: the block survives exif_transpose (without its orientation tag)
    sideways = tmp_path / "sideways.jpg"
    write_photo(sideways, sample("coffee").transpose(Image.Transpose.ROTATE_90), taken="2022:05:06 07:08:09", make="Apple")
    with Image.open(sideways) as im:
        exif = im.getexif()
        exif[0x0112] = 6
        im.save(sideways, exif=exif.tobytes())
    upright = load_image(sideways, 10**8, 10**8, 224).image
    assert upright.width > upright.height
    assert read_photo_info("", upright).taken_at == datetime(2022, 5, 6, 7, 8, 9)
    # without an EXIF block in the picture, the file's header is read as before
    plain = load_image(photos / "tokyo.jpg", 10**8, 10**8, 224).image
    plain.info.pop("exif")
    assert read_photo_info(str(photos / "tokyo.jpg"), plain).camera_model == "NIKON D750"
    assert read_photo_info("", plain) is None


# -- places ----------------------------------------------------------------------------------------


def test_places_of_known_cities(photos: Path, metadata: PhotoMetadata) -> None:
    names = ["paris.jpg", "tokyo.jpg", "sydney.jpg", "newyork.jpg", "plain.jpg"]
    found = metadata.annotate([None] * len(names), [str(photos / n) for n in names])
    places = [(a.photo.city, a.photo.region, a.photo.country) if a.photo else None for a in found]
    assert places == [
        ("Paris", "Ile-de-France", "France"), ("Tokyo", "Tokyo", "Japan"),
        ("Sydney", "New South Wales", "Australia"), ("New York City", "New York", "United States"), None,
    ]
    assert found[0].photo.place == "Paris, Ile-de-France, France"
    assert found[1].photo.place == "Tokyo, Japan"  # the region is the city: said once


def test_the_geocoder_loads_lazily_and_once(photos: Path) -> None:
    annotator = PhotoMetadata()
    annotator.load()
    annotator.annotate([None, None], [str(photos / "plain.jpg"), str(photos / "camera_only.jpg")])
    assert not annotator.geocoder.loaded  # no GPS yet: the place data is not read
    annotator.annotate([None], [str(photos / "tokyo.jpg")])
    first = annotator.geocoder._geocoder
    annotator.annotate([None], [str(photos / "paris.jpg")])
    assert first is not None and annotator.geocoder._geocoder is first
    no_places = PhotoMetadata(places=False)
    assert no_places.annotate([None], [str(photos / "tokyo.jpg")])[0].photo.city is None


def test_places_are_looked_up_once_per_position() -> None:
    class Tree:  # stands in for reverse_geocoder's k-d tree: counts the positions asked
        asked: list[tuple[float, float]] = []

        def query(self, points: list[tuple[float, float]]) -> list[dict[str, str]]:
            self.asked.extend(points)
            return [{"name": f"at {lat}", "admin1": "", "cc": "FR"} for lat, _ in points]

    geocoder = ReverseGeocoder()
    geocoder._geocoder = tree = Tree()
    first = geocoder.places([(48.85301, 2.34991), (48.853, 2.3499), (35.6895, 139.6917)])
    assert first[0] == first[1] == ("at 48.853", None, "France")  # 11 m apart: one place
    assert len(tree.asked) == 2
    again = geocoder.places([(35.6895, 139.6917), (48.853, 2.3499), (-33.8688, 151.2093)])
    assert again[:2] == [first[2], first[0]] and again[2][0] == "at -33.8688"
    assert len(tree.asked) == 3  # only the new position was asked
    assert geocoder.places([]) == []


# -- the library's filters, in the stores that need no server ---------------------------------------


@pytest.fixture(params=["faiss", "memory"])
def indexed(request: pytest.FixtureRequest, photos: Path, tmp_path: Path) -> Iterator[Extractor]:
    with _extractor(tmp_path / "db", request.param) as ex:
        report = ex.process_directory(photos)
        assert report.failed == 0 and report.processed == 6
        yield ex


def test_records_hold_the_metadata(indexed: Extractor, photos: Path) -> None:
    paris = indexed.get_by_path(photos / "paris.jpg")
    assert paris.photo.place == "Paris, Ile-de-France, France" and paris.photo.iso == 400
    assert paris.photo.taken_at.utcoffset() == timedelta(hours=2)
    assert paris.colors and all(isinstance(c, str) for c in paris.colors)
    assert indexed.get_by_path(photos / "plain.jpg").photo is None


def test_date_camera_place_filters(indexed: Extractor) -> None:
    assert _names(indexed.list(taken_after="2020-01-01")) == ["newyork.jpg", "paris.jpg", "sydney.jpg"]
    assert _names(indexed.list(taken_before=date(2020, 1, 1))) == ["tokyo.jpg"]
    assert _names(indexed.list(taken_after="2020-01-01", taken_before="2021-12-31")) == ["newyork.jpg", "paris.jpg"]
    assert _names(indexed.list(taken_after=datetime(2021, 7, 14, 18, 30, 5))) == ["paris.jpg", "sydney.jpg"]
    assert _names(indexed.list(camera="nikon")) == ["tokyo.jpg"]
    assert _names(indexed.list(camera="X-T")) == ["camera_only.jpg"]
    assert _names(indexed.list(place="japan")) == ["tokyo.jpg"]
    assert _names(indexed.list(place="new south")) == ["sydney.jpg"]
    assert indexed.count(place="United States") == 1 and indexed.count(place="Atlantis") == 0
    assert indexed.count(taken_after="2019-01-01", camera="canon") == 1


def test_filters_never_hide_photos_for_fields_they_do_not_ask(indexed: Extractor) -> None:
    assert indexed.count() == 6
    assert indexed.count(has_text=False) == 6  # no OCR ran: no image has text
    assert indexed.count(has_people=False) == 6
    assert "plain.jpg" in _names(indexed.list(has_text=False))
    assert "plain.jpg" not in _names(indexed.list(taken_after="1900-01-01"))  # asked: it has no date


def test_filters_combine_with_search_and_objects(indexed: Extractor) -> None:
    everywhere = indexed.search("a photo", limit=10)
    assert len(everywhere) == 6
    in_japan = indexed.search("a photo", place="japan", limit=10)
    assert _names(in_japan) == ["tokyo.jpg"]
    recent = indexed.search("a photo", taken_after="2020-06-01", limit=10)
    assert _names(recent) == ["paris.jpg", "sydney.jpg"]
    tagged = {o for r in indexed.list() for o in r.objects}
    some = sorted(tagged)[0]
    with_object = [r for r in indexed.list(objects=some) if r.photo and r.photo.taken_at]
    dated = indexed.search("a photo", objects=some, taken_after="1900-01-01", limit=10)
    assert _names(dated) == _names(with_object)
    assert _names(indexed.search_image(sample("coffee"), place="australia", limit=10)) == ["sydney.jpg"]


def test_the_details_feed_the_text_vector(indexed: Extractor) -> None:
    """The tiny text embedder hashes words: the place and camera words reach the right photo."""
    assert indexed.search("taken in Tokyo Japan", limit=1)[0].record.filename == "tokyo.jpg"
    assert indexed.search("shot with a Canon EOS R5", limit=1)[0].record.filename == "paris.jpg"
    assert indexed.search("taken in Sydney, New South Wales, Australia", limit=1)[0].record.filename == "sydney.jpg"


def test_bad_filters_are_clear_errors(indexed: Extractor) -> None:
    with pytest.raises(ConfigurationError, match="taken_after must be a date"):
        indexed.list(taken_after="last tuesday")
    with pytest.raises(ConfigurationError, match="unknown filter camrea"):
        indexed.search("x", camrea="canon")
    with pytest.raises(ConfigurationError, match="has_people must be true or false"):
        indexed.count(has_people="maybe")


def test_a_copy_reuses_the_metadata(photos: Path, tmp_path: Path) -> None:
    folder = tmp_path / "copies"
    folder.mkdir()
    shutil.copy(photos / "tokyo.jpg", folder / "a.jpg")
    shutil.copy(photos / "tokyo.jpg", folder / "b.jpg")
    with _extractor(tmp_path / "db") as ex:
        ex.process(folder / "a.jpg")
        result = ex.process(folder / "b.jpg")
        assert result.duplicate_of is not None
        assert result.record.photo == ex.get_by_path(folder / "a.jpg").photo
        assert result.record.photo.city == "Tokyo"


# -- the faiss store's schema migration --------------------------------------------------------------


def test_faiss_migrates_a_version_1_file(photos: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    with _extractor(db, annotators=()) as ex:
        ex.process_directory(photos)
    sqlite_file = db / "image_contexts.sqlite3"
    conn = sqlite3.connect(sqlite_file)  # make it the file an older imgctx wrote
    conn.execute("DROP TABLE details")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    store = FaissStore(db)
    try:
        version = store._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        assert version == "2"
        assert store.count() == 6 and all(r.photo is None and r.people is None for r in store.list())
    finally:
        store.close()
    with _extractor(db) as ex:
        assert ex.count(has_text=False) == 6 and ex.count(taken_after="1900-01-01") == 0
        ex.process_directory(photos, force=True)
        assert _names(ex.list(place="france")) == ["paris.jpg"]


# -- the CLI and the HTTP API -------------------------------------------------------------------------


def test_cli_filters_and_show(run, photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    with _extractor(tmp_path / "db") as ex:  # the db the `run` fixture's CLI opens
        ex.process_directory(photos)
        paris_id = ex.get_by_path(photos / "paris.jpg").id
    code, out, _ = run("--json", "list", "--taken-after", "2020-01-01", "--place", "france")
    assert code == 0 and [r["filename"] for r in json.loads(out)] == ["paris.jpg"]
    code, out, _ = run("--json", "search", "photo", "--camera", "nikon", "--taken-before", "2020-01-01")
    assert code == 0 and [r["filename"] for r in json.loads(out)] == ["tokyo.jpg"]
    code, out, _ = run("list", "--no-text", "--no-people")
    assert code == 0 and out.strip().endswith("6 shown of 6")
    code, out, _ = run("--json", "show", paris_id)
    shown = json.loads(out)
    assert shown["photo"]["place"] == "Paris, Ile-de-France, France" and shown["photo"]["iso"] == 400
    assert shown["photo"]["taken_at"] == "2021-07-14T18:30:05+02:00" and shown["text"] == ""
    code, out, _ = run("show", paris_id)
    assert "Canon EOS R5" in out and "Paris" in out
    code, _, err = run("list", "--taken-after", "yesterday")
    assert code == 1 and "taken_after must be a date" in err and "Traceback" not in err


def test_http_query_parameters(photos: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from server_support import assert_envelope, make_app

    ex = _extractor(tmp_path / "db")
    ex.process_directory(photos)
    with TestClient(make_app(tmp_path, photos, extractor=ex)) as client:
        r = client.get("/api/v1/images/", params={"taken_after": "2020-01-01", "camera": "canon"})
        assert r.status_code == 200 and [i["filename"] for i in r.json()] == ["paris.jpg"]
        r = client.get("/api/v1/images/", params={"query": "photo", "place": "japan", "has_people": "false"})
        assert r.status_code == 200 and [i["filename"] for i in r.json()] == ["tokyo.jpg"]
        info = client.get(f"/api/v1/images/info/{ex.get_by_path(photos / 'sydney.jpg').id}").json()
        assert info["photo"]["city"] == "Sydney" and info["photo"]["altitude"] == pytest.approx(-4.0)
        assert info["people"] is None and isinstance(info["colors"], list)
        assert_envelope(client.get("/api/v1/images/", params={"taken_before": "soon"}), 400)
    ex.close()


def test_the_remote_client_takes_the_filters(photos: Path, tmp_path: Path) -> None:
    """``imgctx.connect()`` against a live server on the same Extractor: the photo filters of
    list/count/search/search_image/search_similar give the same records (photo details and all)
    as locally, sync and async, and a bad filter is the same error before any request."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import asyncio

    from server_support import make_app, serving

    from imgctx import connect, connect_async

    ex = _extractor(tmp_path / "db")
    ex.process_directory(photos)
    tokyo = ex.get_by_path(photos / "tokyo.jpg").id
    with serving(make_app(tmp_path, photos, extractor=ex)) as url, connect(url) as client:
        for api in (ex, client):
            assert _names(api.list(taken_after="2020-01-01", camera="canon")) == ["paris.jpg"]
            assert api.count(taken_after=date(2020, 1, 1)) == 3 and api.count(place="japan", has_people=False) == 1
        assert client.list(taken_after="2020-01-01") == ex.list(taken_after="2020-01-01")
        assert client.get_by_path(photos / "paris.jpg") == ex.get_by_path(photos / "paris.jpg")
        colour = ex.get(tokyo).colors[0]
        assert client.list(colors=[colour.upper()]) == ex.list(colors=colour)
        assert [h.record for h in client.search("a photo", taken_after="2020-06-01", limit=10, offset=1)] == \
            [h.record for h in ex.search("a photo", taken_after="2020-06-01", limit=10, offset=1)]
        assert _names(client.search_image(sample("coffee"), place="australia", limit=10)) == ["sydney.jpg"]
        for call in (lambda api: api.search_similar(tokyo, taken_before="2021-01-01", limit=10),
                     lambda api: api.search_image(photos / "paris.jpg", place="france", limit=10, exclude_self=False)):
            assert [h.record for h in call(client)] == [h.record for h in call(ex)]
        assert _names(client.search_image(record_id=tokyo, has_people=False, taken_before="2021-01-01")) == \
            ["newyork.jpg"]
        assert client.object_counts() == ex.object_counts()
        with pytest.raises(ConfigurationError, match="unknown filter camrea"):
            client.search("x", camrea="canon")
        with pytest.raises(ConfigurationError, match="taken_after must be a date"):
            client.list(taken_after="last tuesday")

        async def remote() -> tuple[int, list[str]]:
            async with connect_async(url) as aclient:
                return await aclient.count(place="japan"), _names(await aclient.list(camera="nikon"))

        assert asyncio.run(remote()) == (1, ["tokyo.jpg"])
    ex.close()


def test_photo_info_properties() -> None:
    assert PhotoInfo(camera_make="Canon", camera_model="Canon EOS 5D").camera == "Canon EOS 5D"
    assert PhotoInfo(camera_make="SONY", camera_model="ILCE-7M3").camera == "SONY ILCE-7M3"
    assert PhotoInfo().camera is None and PhotoInfo().place is None
    assert PhotoInfo(city="Tokyo", region="Tokyo", country="Japan").place == "Tokyo, Japan"


def test_annotations_merge_and_feed_the_document() -> None:
    from imgctx import Annotation, Tag
    from imgctx._details import details_words, merge_annotations

    photo = PhotoInfo(taken_at=datetime(2021, 7, 14), camera_make="Canon", camera_model="Canon EOS R5",
                      city="Paris", region="Ile-de-France", country="France")
    merged = merge_annotations([Annotation(photo=photo), Annotation(colors=("red",), people=2,
                                                                    tags=(Tag("person", 1.0, coarse=True),)),
                                Annotation(text="OPEN"), Annotation(colors=None, text=None)])
    assert (merged.photo, merged.colors, merged.people, merged.text) == (photo, ("red",), 2, "OPEN")
    assert [t.label for t in merged.tags] == ["person"]
    words = details_words(merged.photo, merged.text or "", merged.colors or (), merged.people)
    assert words == ('2 people; red colours; taken in Paris, Ile-de-France, France; taken in July 2021; '
                     'shot with a Canon EOS R5; text: "OPEN"')
    assert details_words(None, "", (), None) == ""
