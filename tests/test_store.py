"""The built-in stores: the faiss store against real SQLite and FAISS, the memory store alike."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from imgctx.backends.faiss_store import FaissStore
from imgctx.backends.memory_store import MemoryStore
from imgctx.errors import IncompatibleIndexError, StoreError
from imgctx.types import ImageRecord, SpaceSpec, StoredVectors, Tag

SPACES = [SpaceSpec("image", "m-img", 8), SpaceSpec("text", "m-txt", 4)]


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_item(i: int, objects: tuple[str, ...] = (), seed: int | None = None) -> StoredVectors:
    rng = np.random.default_rng(i if seed is None else seed)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rec = ImageRecord(
        id=f"id{i:04d}", path=f"/photos/{i:04d}.jpg", filename=f"{i:04d}.jpg", size=(10, 20),
        file_size=100 + i, format="JPEG", caption=f"caption {i}", objects=objects,
        content_hash=f"{i:064x}", phash="0" * 16, dhash="f" * 16, created_at=now, updated_at=now,
        mtime_ns=i, tags=tuple(Tag(o, 0.9) for o in objects),
    )
    return StoredVectors(rec, {"image": _unit(rng, 8), "text": _unit(rng, 4)})


@pytest.fixture(params=["faiss", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaissStore | MemoryStore]:
    s: FaissStore | MemoryStore = FaissStore(tmp_path / "db") if request.param == "faiss" else MemoryStore()
    s.configure(SPACES)
    yield s
    s.close()


def test_upsert_get_count_delete(store: FaissStore | MemoryStore) -> None:
    items = [make_item(i, ("Cat",) if i % 2 else ("dog", "animal")) for i in range(10)]
    store.upsert(items)
    assert store.count() == 10
    got = store.get("id0003")
    assert got is not None and got.path == "/photos/0003.jpg" and got.objects == ("cat",)
    assert store.get("missing") is None
    assert store.get_by_path("/photos/0004.jpg").id == "id0004"  # type: ignore[union-attr]
    assert [r.id for r in store.find_by_hash(f"{5:064x}")] == ["id0005"]
    assert store.delete(["id0003", "nope"]) == 1
    assert store.count() == 9 and store.get("id0003") is None
    assert all(rid != "id0003" for rid, _ in store.query("image", items[3].vectors["image"], 10))


def test_upsert_replaces_by_id_without_duplicates(store: FaissStore | MemoryStore) -> None:
    store.upsert([make_item(1, ("cat",))])
    replacement = make_item(1, ("dog",), seed=99)
    store.upsert([replacement])
    assert store.count() == 1
    assert store.get("id0001").objects == ("dog",)  # type: ignore[union-attr]
    hits = store.query("image", replacement.vectors["image"], 5)
    assert hits[0][0] == "id0001" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 1


def test_query_is_exact_cosine(store: FaissStore | MemoryStore) -> None:
    items = [make_item(i) for i in range(50)]
    store.upsert(items)
    q = items[7].vectors["image"]
    hits = store.query("image", q, 5)
    sims = np.stack([it.vectors["image"] for it in items]) @ q
    expected = [f"id{j:04d}" for j in np.argsort(-sims)[:5]]
    assert [h[0] for h in hits] == expected
    assert [h[1] for h in hits] == pytest.approx(sorted(sims, reverse=True)[:5], abs=1e-5)


def test_object_filter_is_any_of_and_case_insensitive(store: FaissStore | MemoryStore) -> None:
    store.upsert([make_item(0, ("cat",)), make_item(1, ("dog",)), make_item(2, ("bird",)), make_item(3, ("Cat", "dog"))])
    assert {r.id for r in store.list(["CAT"])} == {"id0000", "id0003"}
    assert {r.id for r in store.list(["cat", "dog"])} == {"id0000", "id0001", "id0003"}
    assert store.count(["cat", "dog"]) == 3
    assert store.count(["fish"]) == 0
    q = make_item(2).vectors["image"]
    assert {h[0] for h in store.query("image", q, 10, ["dog"])} == {"id0001", "id0003"}
    assert store.query("image", q, 10, ["fish"]) == []


def test_pagination_is_stable_and_complete(store: FaissStore | MemoryStore) -> None:
    store.upsert([make_item(i) for i in range(25)])
    pages = [store.list(limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    ids = [r.id for p in pages for r in p]
    assert ids == [f"id{i:04d}" for i in range(25)]


def test_refuses_to_mix_vector_spaces(store: FaissStore | MemoryStore) -> None:
    store.configure(SPACES)  # the same spaces again is fine
    with pytest.raises(IncompatibleIndexError, match="m-img"):
        store.configure([SpaceSpec("image", "other-model", 8), SpaceSpec("text", "m-txt", 4)])
    with pytest.raises(IncompatibleIndexError):
        store.configure([SpaceSpec("image", "m-img", 16), SpaceSpec("text", "m-txt", 4)])


def test_faiss_store_persists_and_reloads_the_saved_index(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    items = [make_item(i, ("cat",)) for i in range(20)]
    s.upsert(items)
    s.close()
    assert (tmp_path / "image_contexts.image.faiss").exists()
    s2 = FaissStore(tmp_path)
    with pytest.raises(IncompatibleIndexError):
        s2.configure([SpaceSpec("image", "x", 8), SpaceSpec("text", "m-txt", 4)])
    assert s2.count() == 20
    assert s2.query("image", items[4].vectors["image"], 1)[0][0] == "id0004"
    s2.close()


def test_faiss_index_rebuilt_when_missing_or_stale(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    s.upsert([make_item(i) for i in range(5)])
    s.close()
    # Another writer adds records without saving FAISS (as a killed process would).
    conn_store = FaissStore(tmp_path)
    conn_store.upsert([make_item(i) for i in range(5, 9)])
    conn_store._conn.close()  # no save(): the saved index is now stale
    (tmp_path / "image_contexts.text.faiss").unlink()  # and one index file is gone entirely
    s3 = FaissStore(tmp_path)
    assert s3.count() == 9
    q = make_item(8)
    assert s3.query("image", q.vectors["image"], 1)[0][0] == "id0008"
    assert s3.query("text", q.vectors["text"], 1)[0][0] == "id0008"
    s3.close()


def test_faiss_sees_another_processes_writes(tmp_path: Path) -> None:
    reader = FaissStore(tmp_path)
    reader.configure(SPACES)
    writer = FaissStore(tmp_path)
    writer.configure(SPACES)
    reader.upsert([make_item(0)])
    writer.upsert([make_item(1)])
    q = make_item(1).vectors["image"]
    assert reader.query("image", q, 1)[0][0] == "id0001"
    reader.close()
    writer.close()


def test_faiss_sqlite_is_wal_and_consistent(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    s.upsert([make_item(i, ("cat",)) for i in range(3)])
    s.delete(["id0001"])
    conn = sqlite3.connect(tmp_path / "image_contexts.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 4  # 2 records x 2 spaces
    assert conn.execute("SELECT COUNT(*) FROM tags").fetchone()[0] == 2
    conn.close()
    s.close()


def test_faiss_rejects_wrong_dimensions(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    bad = make_item(0)
    bad.vectors["image"] = np.ones(3, np.float32)
    with pytest.raises(StoreError, match="dims"):
        s.upsert([bad])
    assert s.count() == 0  # the failed batch left nothing behind
    s.close()


def test_faiss_approximate_index_beyond_the_exact_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s = FaissStore(tmp_path, exact_search_limit=500)
    s.configure([SpaceSpec("image", "m", 32), SpaceSpec("text", "t", 4)])
    items = []
    for i in range(2000):
        v = rng.normal(size=32).astype(np.float32)
        base = make_item(i).record
        items.append(StoredVectors(base, {"image": v / np.linalg.norm(v), "text": _unit(rng, 4)}))
    s.upsert(items)
    s.close()
    s2 = FaissStore(tmp_path, exact_search_limit=500)
    q = items[123].vectors["image"]
    hits = s2.query("image", q, 10)
    assert s2._indexes["image"].approximate
    assert hits[0][0] == "id0123"
    s2.close()


def test_faiss_switches_to_approximate_when_it_outgrows_exact_search(tmp_path: Path) -> None:
    s = FaissStore(tmp_path, exact_search_limit=300)
    s.configure(SPACES)
    items = [make_item(i) for i in range(600)]
    s.upsert(items[:200])
    s.query("image", items[0].vectors["image"], 1)
    assert not s._indexes["image"].approximate
    s.upsert(items[200:])
    hits = s.query("image", items[450].vectors["image"], 3)
    assert s._indexes["image"].approximate and s._indexes["image"].trained_on == 600
    assert hits[0][0] == "id0450"
    s.close()


def test_faiss_reopen_reuses_the_saved_index_without_rebuilding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    items = [make_item(i) for i in range(30)]
    s.upsert(items)
    s.close()

    def no_rebuild(self: FaissStore, space: str) -> None:
        raise AssertionError(f"rebuilt {space} from SQLite although the saved index is current")

    monkeypatch.setattr(FaissStore, "_load_vectors", no_rebuild)
    other = FaissStore(tmp_path)  # merely opening another handle must not make indexes stale
    s2 = FaissStore(tmp_path)
    assert s2.query("image", items[9].vectors["image"], 1)[0][0] == "id0009"
    other.close()
    s2.close()


@pytest.mark.parametrize("limit", [0, 5])
def test_faiss_tiny_exact_limit_stays_usable(tmp_path: Path, limit: int) -> None:
    s = FaissStore(tmp_path, exact_search_limit=limit)
    s.configure(SPACES)
    items = [make_item(i) for i in range(12)]
    s.upsert(items)
    assert s.query("image", items[3].vectors["image"], 1)[0][0] == "id0003"
    s.close()


def test_faiss_goes_back_to_exact_search_when_the_store_shrinks(tmp_path: Path) -> None:
    s = FaissStore(tmp_path, exact_search_limit=100)
    s.configure(SPACES)
    items = [make_item(i) for i in range(400)]
    s.upsert(items)
    s.query("image", items[0].vectors["image"], 1)
    assert s._indexes["image"].approximate
    s.delete([it.record.id for it in items[50:]])
    hits = s.query("image", items[7].vectors["image"], 50)
    assert not s._indexes["image"].approximate
    assert len(hits) == 50 and hits[0][0] == "id0007"
    s.close()
    reopened = FaissStore(tmp_path, exact_search_limit=10_000)  # a raised limit also means exact
    reopened.upsert([make_item(i) for i in range(50, 400)])
    reopened.query("image", items[0].vectors["image"], 1)
    assert not reopened._indexes["image"].approximate
    reopened.close()


def test_faiss_two_handles_writing_and_saving_stay_consistent(tmp_path: Path) -> None:
    a, b = FaissStore(tmp_path), FaissStore(tmp_path)
    a.configure(SPACES)
    b.configure(SPACES)
    a.upsert([make_item(i) for i in range(10)])
    a.query("image", make_item(0).vectors["image"], 1)
    replacement = make_item(0, seed=1234)
    b.upsert([replacement])  # a's in-memory index is now behind
    b.close()
    a.close()  # a notices, resyncs and saves what SQLite holds
    c = FaissStore(tmp_path)
    hit = c.query("image", replacement.vectors["image"], 1)[0]
    assert hit[0] == "id0000" and hit[1] == pytest.approx(1.0, abs=1e-5)
    c.close()


def test_faiss_locked_database_is_a_store_error(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    s._conn.execute("PRAGMA busy_timeout=100")
    other = sqlite3.connect(tmp_path / "image_contexts.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="locked"):
            s.upsert([make_item(1)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    s.upsert([make_item(1)])
    assert s.count() == 1
    s.close()


@pytest.mark.parametrize("kind", ["faiss", "memory"])
def test_same_id_twice_in_one_upsert_keeps_the_last(tmp_path: Path, kind: str) -> None:
    s: FaissStore | MemoryStore = FaissStore(tmp_path) if kind == "faiss" else MemoryStore()
    s.configure(SPACES)
    first, last = make_item(3, ("cat",)), make_item(3, ("dog",), seed=77)
    s.upsert([first, last])
    assert s.count() == 1 and s.get("id0003").objects == ("dog",)  # type: ignore[union-attr]
    hits = s.query("image", last.vectors["image"], 5)
    assert [h[0] for h in hits] == ["id0003"] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    s.close()


def test_faiss_a_new_id_at_an_old_path_replaces_it_everywhere(tmp_path: Path) -> None:
    s = FaissStore(tmp_path)
    s.configure(SPACES)
    s.upsert([make_item(1)])
    moved = make_item(2)
    moved = StoredVectors(replace(moved.record, path=make_item(1).record.path), moved.vectors)
    s.upsert([moved])
    assert s.count() == 1 and s.get("id0001") is None
    assert s._indexes["image"].ntotal == 1
    assert s.query("image", make_item(1).vectors["image"], 5)[0][0] == "id0002"
    s.close()
