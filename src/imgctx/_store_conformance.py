"""The conformance suite every store passes (``imgctx.testing.StoreConformance``); needs pytest."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imgctx._errors import IncompatibleIndexError, StoreError
from imgctx._filters import RecordFilter, make_filter
from imgctx._types import ImageRecord, PhotoInfo, SpaceSpec, StoredVectors, Tag

#: The vector spaces the suite configures: small, so every store runs it in seconds.
SPACES = (SpaceSpec("image", "conf-img", 8), SpaceSpec("text", "conf-txt", 4))


def unit_vector(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_item(i: int, objects: tuple[str, ...] = (), seed: int | None = None) -> StoredVectors:
    """A record ``id0000``-style with tags ``objects`` and random unit vectors in :data:`SPACES`."""
    rng = np.random.default_rng(i if seed is None else seed)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    record = ImageRecord(
        id=f"id{i:04d}", path=f"/photos/{i:04d}.jpg", filename=f"{i:04d}.jpg", size=(10 + i, 20),
        file_size=100 + i, format="JPEG", caption=f"caption {i}", objects=objects,
        content_hash=f"{i:064x}", phash=f"{i:016x}", dhash="f" * 16, created_at=now, updated_at=now,
        mtime_ns=1_700_000_000_000_000_000 + i, tags=tuple(Tag(o, 0.5 + i % 5 / 10) for o in objects),
        orient_hashes=f"{i:016x}" * 16,
    )
    return StoredVectors(record, {s.name: unit_vector(rng, s.dim) for s in SPACES})


def with_details(item: StoredVectors, **details: Any) -> StoredVectors:
    """``item`` with photo metadata, text, colours or people set (``ImageRecord`` keywords)."""
    return StoredVectors(replace(item.record, **details), item.vectors)


def detailed_items() -> list[StoredVectors]:
    """Records covering every photo filter, and records with no details at all."""
    paris = PhotoInfo(taken_at=datetime(2021, 7, 14, 18, 30, tzinfo=timezone(timedelta(hours=2))),
                      camera_make="Canon", camera_model="Canon EOS R5", latitude=48.85, longitude=2.35,
                      city="Paris", region="Île-de-France", country="France")
    tokyo = PhotoInfo(taken_at=datetime(2019, 1, 2, 8, 0), camera_make="NIKON CORPORATION",
                      camera_model="NIKON D750", city="Tokyo", region="Tokyo", country="Japan")
    undated = PhotoInfo(camera_make="Apple", camera_model="iPhone 12")
    return [
        with_details(make_item(0, ("cat",)), photo=paris, colors=("red", "black"), people=2),
        with_details(make_item(1, ("dog",)), photo=tokyo, text="OPEN 24 Hours", colors=("blue",), people=0),
        with_details(make_item(2, ("cat",)), photo=undated, text="Straße", people=1),
        make_item(3, ("cat",)),  # no details at all (as records written before them)
        with_details(make_item(4), photo=PhotoInfo(taken_at=datetime(2020, 1, 1)), colors=("white",)),
    ]


#: Filters the conformance suite checks against ``RecordFilter.matches``.
FILTER_CASES: tuple[dict[str, Any], ...] = (
    {"taken_after": "2020-01-01"}, {"taken_before": "2020-01-01"}, {"taken_after": datetime(2021, 7, 14, 18, 30)},
    {"taken_after": "2019-01-01", "taken_before": "2021-01-01"}, {"camera": "nikon"}, {"camera": "EOS"},
    {"place": "île"}, {"place": "japan"}, {"has_text": True}, {"has_text": False}, {"has_people": True},
    {"has_people": False}, {"text_contains": "24 hours"}, {"text_contains": "STRASSE"}, {"colors": "red,blue"},
    {"colors": ["white"]}, {"place": "nowhere"},
)


def _record_fields(r: ImageRecord) -> tuple[Any, ...]:
    """The fields a search hit shows (``image_info``) and the tags."""
    return (r.id, r.path, r.filename, r.size, r.file_size, r.format, r.caption, r.objects, r.tags)


def _ids(records: list[ImageRecord]) -> list[str]:
    return [r.id for r in records]


class StoreConformance:
    """What every ``VectorStore`` must do, as pytest tests.

    Subclass it in a test module under a name pytest collects (``TestMyStore``) and implement
    :meth:`open_store`; set ``persistent = False`` for a store that keeps nothing after
    ``close()`` (its reopen tests are skipped, saying so). Each test gets a fresh location.
    """

    #: False for a store that cannot be reopened with its data (the ``memory`` store).
    persistent: bool = True

    def open_store(self, location: Path) -> Any:
        """A new store handle at ``location`` (a folder the test owns; it may not exist yet)."""
        raise NotImplementedError

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def location(self, tmp_path: Path) -> Path:
        return tmp_path / "store"

    @pytest.fixture
    def store(self, location: Path) -> Iterator[Any]:
        s = self.open_store(location)
        s.configure(list(SPACES))
        yield s
        s.close()

    def reopen(self, store: Any, location: Path) -> Any:
        if not self.persistent:
            pytest.skip(f"{type(store).__name__} keeps nothing after close(), so it cannot be reopened")
        store.close()
        return self.open_store(location)

    # -- records --------------------------------------------------------------------------------

    def test_empty_store(self, store: Any) -> None:
        assert store.count() == 0 and store.count(["cat"]) == 0
        assert store.list() == [] and store.get("id0000") is None and store.get_many(["id0000"]) == []
        assert store.query("image", make_item(0).vectors["image"], 5) == []
        assert store.delete(["id0000"]) == 0
        assert store.vectors("image", ["id0000"]) == {}

    def test_upsert_get_count_delete(self, store: Any) -> None:
        items = [make_item(i, ("Cat",) if i % 2 else ("dog", "animal")) for i in range(10)]
        store.upsert(items)
        assert store.count() == 10
        got = store.get("id0003")
        assert got == replace(items[3].record, objects=("cat",), tags=(Tag("cat", items[3].record.tags[0].score),))
        assert store.get("missing") is None
        assert store.get_by_path("/photos/0004.jpg").id == "id0004"
        assert store.get_by_path("/photos/none.jpg") is None
        assert _ids(store.find_by_hash(f"{5:064x}")) == ["id0005"]
        assert store.delete(["id0003", "nope"]) == 1
        assert store.count() == 9 and store.get("id0003") is None
        assert store.delete(["id0003"]) == 0
        assert all(rid != "id0003" for rid, _ in store.query("image", items[3].vectors["image"], 10))
        assert all(rid != "id0003" for rid, _ in store.query("text", items[3].vectors["text"], 10))

    def test_records_round_trip_every_field(self, store: Any) -> None:
        item = make_item(7, ("tabby", "cat"))
        coarse = replace(item.record, tags=(Tag("tabby", 0.75), Tag("cat", 0.75, coarse=True)),
                         caption="a tabby cat — ünïcode", path="/photos/ü 7.jpg")
        store.upsert([StoredVectors(coarse, item.vectors)])
        assert store.get("id0007") == coarse
        assert store.get_by_path("/photos/ü 7.jpg") == coarse

    def test_get_many_keeps_the_asked_order_and_skips_missing(self, store: Any) -> None:
        store.upsert([make_item(i) for i in range(5)])
        assert _ids(store.get_many(["id0003", "nope", "id0001"])) == ["id0003", "id0001"]

    def test_vectors_round_trip(self, store: Any) -> None:
        items = [make_item(i) for i in range(4)]
        store.upsert(items)
        got = store.vectors("text", ["id0002", "id0000", "nope"])
        assert set(got) == {"id0000", "id0002"}
        np.testing.assert_allclose(got["id0002"], items[2].vectors["text"], atol=1e-6)
        np.testing.assert_allclose(store.vectors("image", ["id0001"])["id0001"], items[1].vectors["image"], atol=1e-6)

    def test_upsert_replaces_by_id_without_duplicates(self, store: Any) -> None:
        store.upsert([make_item(1, ("cat",)), make_item(2, ("bird",))])
        replacement = make_item(1, ("dog",), seed=99)
        store.upsert([replacement])
        assert store.count() == 2
        assert store.get("id0001").objects == ("dog",)
        assert store.count(["cat"]) == 0 and _ids(store.list(["cat"])) == []  # the old tag is gone
        assert store.query("image", replacement.vectors["image"], 5, ["cat"]) == []
        hits = store.query("image", replacement.vectors["image"], 5)
        assert hits[0][0] == "id0001" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
        assert len(hits) == 2

    def test_same_id_twice_in_one_upsert_keeps_the_last(self, store: Any) -> None:
        first, last = make_item(3, ("cat",)), make_item(3, ("dog",), seed=77)
        store.upsert([first, last])
        assert store.count() == 1 and store.get("id0003").objects == ("dog",)
        hits = store.query("image", last.vectors["image"], 5)
        assert [h[0] for h in hits] == ["id0003"] and hits[0][1] == pytest.approx(1.0, abs=1e-5)

    def test_bad_vectors_are_a_store_error_and_write_nothing(self, store: Any) -> None:
        bad = make_item(0)
        bad.vectors["image"] = np.ones(3, np.float32)
        with pytest.raises(StoreError, match="dims"):
            store.upsert([make_item(1), bad])
        unknown = make_item(2)
        unknown.vectors["audio"] = np.ones(3, np.float32)
        with pytest.raises(StoreError, match="audio"):
            store.upsert([unknown])
        assert store.count() == 0

    # -- search -----------------------------------------------------------------------------------

    def test_query_ranks_by_cosine(self, store: Any) -> None:
        items = [make_item(i) for i in range(50)]
        store.upsert(items)
        for space in ("image", "text"):
            q = items[7].vectors[space]
            sims = np.stack([it.vectors[space] for it in items]) @ q
            hits = store.query(space, q, 5)
            assert [h[0] for h in hits] == [f"id{j:04d}" for j in np.argsort(-sims)[:5]]
            assert [h[1] for h in hits] == pytest.approx(sorted(sims, reverse=True)[:5], abs=1e-5)
        assert len(store.query("image", items[0].vectors["image"], 500)) == 50

    def test_object_filter_is_any_of_and_case_insensitive(self, store: Any) -> None:
        store.upsert([make_item(0, ("cat",)), make_item(1, ("dog",)), make_item(2, ("bird",)),
                      make_item(3, ("Cat", "dog"))])
        assert set(_ids(store.list(["CAT"]))) == {"id0000", "id0003"}
        assert set(_ids(store.list(["cat", "dog"]))) == {"id0000", "id0001", "id0003"}
        assert store.count(["cat", "dog"]) == 3 and store.count([" DOG "]) == 2
        assert store.count(["fish"]) == 0 and store.list(["fish"]) == []
        q = make_item(2).vectors["image"]
        assert {h[0] for h in store.query("image", q, 10, ["dog"])} == {"id0001", "id0003"}
        assert {h[0] for h in store.query("text", q[:4] / np.linalg.norm(q[:4]), 10, ["BIRD"])} == {"id0002"}
        assert store.query("image", q, 10, ["fish"]) == []

    def test_filtered_query_finds_rare_objects_among_many(self, store: Any) -> None:
        items = [make_item(i, ("rare",) if i % 40 == 0 else ("common",)) for i in range(200)]
        store.upsert(items)
        q = items[1].vectors["image"]  # nearest to a "common" record
        hits = store.query("image", q, 10, ["rare"])
        assert {h[0] for h in hits} == {f"id{i:04d}" for i in range(0, 200, 40)}
        sims = {h[0]: h[1] for h in hits}
        for i in range(0, 200, 40):
            assert sims[f"id{i:04d}"] == pytest.approx(float(items[i].vectors["image"] @ q), abs=1e-5)

    def test_object_counts(self, store: Any) -> None:
        assert store.object_counts() == {}
        store.upsert([make_item(0, ("cat",)), make_item(1, ("Cat", "animal")), make_item(2, ("dog", "animal")),
                      make_item(3)])
        assert store.object_counts() == {"cat": 2, "animal": 2, "dog": 1}
        store.upsert([make_item(1, ("bird",), seed=9)])  # a replaced record's old tags no longer count
        store.delete(["id0002"])
        assert store.object_counts() == {"cat": 1, "bird": 1}

    # -- photo details and their filters ---------------------------------------------------------------

    def test_details_round_trip(self, store: Any) -> None:
        items = detailed_items()
        store.upsert(items)
        for item in items:
            assert store.get(item.record.id) == item.record
        assert store.get("id0003").photo is None and store.get("id0003").people is None

    def test_details_are_replaced_not_merged(self, store: Any) -> None:
        items = detailed_items()
        store.upsert(items)
        bare = make_item(0, ("cat",))
        store.upsert([bare])
        assert store.get("id0000") == bare.record
        assert store.count(where=make_filter(has_people=True)) == 1

    @pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
    def test_photo_filters_match_the_reference(self, store: Any, case: dict[str, Any]) -> None:
        items = detailed_items()
        store.upsert(items)
        where = make_filter(**case)
        assert isinstance(where, RecordFilter)
        expected = [it.record.id for it in items if where.matches(it.record)]
        assert _ids(store.list(where=where)) == expected
        assert store.count(where=where) == len(expected)
        assert {h[0] for h in store.query("image", items[0].vectors["image"], 10, where=where)} == set(expected)
        with_cats = [it.record.id for it in items if where.matches(it.record) and "cat" in it.record.objects]
        assert _ids(store.list(["cat"], where=where)) == with_cats
        assert {h[0] for h in store.query("text", items[1].vectors["text"], 10, ["cat"], where=where)} == set(with_cats)

    def test_a_filter_never_hides_records_for_fields_it_does_not_ask(self, store: Any) -> None:
        store.upsert(detailed_items())
        assert store.count(where=make_filter(has_text=False)) == 3  # incl. the record without details
        assert "id0003" in _ids(store.list(where=make_filter(has_people=False)))
        assert store.count() == 5

    # -- listing ------------------------------------------------------------------------------------

    def test_pagination_is_stable_complete_and_in_insertion_order(self, store: Any) -> None:
        store.upsert([make_item(i) for i in range(15)])
        store.upsert([make_item(i) for i in range(15, 25)])
        store.upsert([make_item(4, ("cat",), seed=5)])  # replacing keeps a record's place
        pages = [store.list(limit=10, offset=o) for o in (0, 10, 20, 30)]
        assert [len(p) for p in pages] == [10, 10, 5, 0]
        assert [r.id for p in pages for r in p] == [f"id{i:04d}" for i in range(25)]
        assert store.list(limit=0) == []

    def test_filtered_pagination(self, store: Any) -> None:
        store.upsert([make_item(i, ("cat",) if i % 3 == 0 else ("dog",)) for i in range(30)])
        cats = [f"id{i:04d}" for i in range(0, 30, 3)]
        pages = [store.list(["cat"], limit=4, offset=o) for o in (0, 4, 8, 12)]
        assert [len(p) for p in pages] == [4, 4, 2, 0]
        assert [r.id for p in pages for r in p] == cats
        assert store.count(["cat"]) == 10

    # -- spaces, persistence, concurrency -------------------------------------------------------------

    def test_refuses_to_mix_vector_spaces(self, store: Any, location: Path) -> None:
        store.configure(list(SPACES))  # the same spaces again is fine
        with pytest.raises(IncompatibleIndexError, match="conf-img"):
            store.configure([SpaceSpec("image", "other-model", 8), SPACES[1]])
        with pytest.raises(IncompatibleIndexError):
            store.configure([SpaceSpec("image", "conf-img", 16), SPACES[1]])
        with pytest.raises(IncompatibleIndexError):
            store.configure([SPACES[0]])

    def test_refusal_survives_reopen(self, store: Any, location: Path) -> None:
        store.upsert([make_item(0)])
        reopened = self.reopen(store, location)
        try:
            assert reopened.spaces == {s.name: s for s in SPACES}
            with pytest.raises(IncompatibleIndexError):
                reopened.configure([SpaceSpec("image", "other-model", 8), SPACES[1]])
            assert reopened.count() == 1
        finally:
            reopened.close()

    def test_persists_across_reopen(self, store: Any, location: Path) -> None:
        items = [make_item(i, ("cat",) if i % 2 else ("dog",)) for i in range(30)]
        store.upsert(items)
        store.delete(["id0005"])
        reopened = self.reopen(store, location)
        try:
            reopened.configure(list(SPACES))
            assert reopened.count() == 29 and reopened.count(["cat"]) == 14
            assert reopened.get("id0004") == items[4].record
            assert reopened.query("image", items[9].vectors["image"], 1)[0][0] == "id0009"
            assert [r.id for r in reopened.list(limit=3)] == ["id0000", "id0001", "id0002"]
            reopened.upsert([make_item(30)])
            assert reopened.count() == 30
        finally:
            reopened.close()

    def test_concurrent_readers_with_one_writer(self, store: Any) -> None:
        batches = [[make_item(b * 10 + i, ("cat",) if i % 2 else ("dog",)) for i in range(10)] for b in range(8)]
        store.upsert(batches[0])
        done = threading.Event()
        errors: list[BaseException] = []
        seen: list[list[int]] = [[] for _ in range(3)]
        probe = batches[0][3].vectors["image"]

        def write() -> None:
            try:
                for batch in batches[1:]:
                    store.upsert(batch)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        def read(k: int) -> None:
            try:
                while True:
                    finished = done.is_set()
                    seen[k].append(store.count())
                    assert store.query("image", probe, 1)[0][0] == "id0003"
                    assert all("cat" in r.objects for r in store.list(["cat"], limit=5))
                    assert store.get("id0003") is not None
                    if finished:
                        return
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write)] + [threading.Thread(target=read, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        for counts in seen:
            assert counts == sorted(counts) and counts[-1] == 80  # never goes back, ends complete
        assert store.count() == 80 and store.count(["cat"]) == 40

    # -- through the Extractor ------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    def photos(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        pytest.importorskip("skimage")
        from imgctx._testkit import write_sample_photos

        folder = tmp_path_factory.mktemp("conformance-photos")
        write_sample_photos(folder)
        return folder

    def test_extractor_results_match_the_reference_store(self, photos: Path, tmp_path: Path) -> None:
        """Search (with an object filter and min_score), list and count through an Extractor
        with the tiny models give what the exact in-memory store gives."""
        from imgctx import Extractor
        from imgctx._testkit import settings_for_tests

        settings = settings_for_tests(tmp_path / "db", preset="tiny")
        with Extractor(settings=settings, store=self.open_store(tmp_path / "under-test")) as ex, \
                Extractor(settings=settings, store="memory") as ref:
            for e in (ex, ref):
                report = e.process_directory(photos)
                assert report.failed == 0 and report.processed == len(list(photos.iterdir()))
            colours = sorted({o for r in ref.list() for o in r.objects if o in ("red", "green", "blue")})
            for kwargs in ({}, {"objects": colours[:1]}, {"min_score": 0.2}, {"objects": ["BRIGHT", "dark"], "min_score": 0.1}):
                got, want = ex.search("bright red colour", limit=4, **kwargs), ref.search("bright red colour", limit=4, **kwargs)
                assert [h.record.id for h in got] == [h.record.id for h in want], kwargs
                assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
                assert [_record_fields(h.record) for h in got] == [_record_fields(h.record) for h in want]
            image = sorted(photos.iterdir())[0]
            assert [h.record.id for h in ex.search_image(image, limit=3)] == [h.record.id for h in ref.search_image(image, limit=3)]
            assert ex.count() == ref.count() and ex.count(colours[:1]) == ref.count(colours[:1])
            assert [r.id for r in ex.list(limit=3, offset=1)] == [r.id for r in ref.list(limit=3, offset=1)]
