"""What only the faiss store does, against real SQLite and FAISS (what every store does is in
test_store_conformance.py)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from imgctx._backends.faiss_store import FaissStore
from imgctx._errors import IncompatibleIndexError, StoreError
from imgctx._types import ImageRecord, SpaceSpec, StoredVectors, Tag

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


def test_faiss_ivf_search_keeps_recall_on_clustered_vectors(tmp_path: Path) -> None:
    """The IVF sizing (2 sqrt(n) lists, 1/80 of them probed, at least 8) against exact search,
    past the default exact-search limit, on 512-d vectors shaped like image embeddings (topics,
    clusters, noise: a query's nearest vector at cosine ~0.9, its 10th at ~0.3): recall@10 of at
    least 0.95, unfiltered and filtered to 5% of the records."""
    from imgctx._backends.faiss_index import ivf_lists, ivf_probes

    assert (ivf_lists(1_000_000), ivf_probes(ivf_lists(1_000_000))) == (2000, 25)
    rng = np.random.default_rng(7)
    n, dim = 60_000, 512

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    topics = unit(rng.normal(size=(100, dim)).astype(np.float32))
    centres = unit(topics[rng.integers(0, 100, n // 20)]
                   + rng.normal(size=(n // 20, dim)).astype(np.float32) / np.sqrt(dim))
    vecs = unit(centres[rng.integers(0, n // 20, n)] + rng.normal(size=(n, dim)).astype(np.float32) * (1.5 / np.sqrt(dim)))
    s = FaissStore(tmp_path)
    s.configure([SpaceSpec("image", "m", dim), SpaceSpec("text", "t", 4)])
    text = _unit(rng, 4)
    for start in range(0, n, 20_000):
        s.upsert([StoredVectors(make_item(i, objects=("rare",) if i % 20 == 0 else ("common",), seed=0).record,
                                {"image": vecs[i], "text": text}) for i in range(start, start + 20_000)])
    queries = unit(vecs[rng.choice(n, 40, replace=False)] + rng.normal(size=(40, dim)).astype(np.float32) * (0.5 / np.sqrt(dim)))
    rare = np.arange(n) % 20 == 0
    found = found_f = 0
    for q in queries:
        sims = vecs @ q
        truth = {f"id{i:04d}" for i in np.argsort(-sims)[:10]}
        truth_f = {f"id{i:04d}" for i in np.argsort(-np.where(rare, sims, -np.inf))[:10]}
        found += len(truth & {rid for rid, _ in s.query("image", q, 10)})
        found_f += len(truth_f & {rid for rid, _ in s.query("image", q, 10, objects=["rare"])})
    index = s._indexes["image"]
    assert index.approximate and index.index.nlist == ivf_lists(index.trained_on)
    assert found / 400 >= 0.95 and found_f / 400 >= 0.95, (found / 400, found_f / 400)
    s.close()


def test_one_search_runs_on_the_threads_it_is_given_and_leaves_other_threads_alone() -> None:
    import threading

    from imgctx._backends.faiss_index import import_faiss, omp_threads

    faiss = import_faiss()
    faiss.omp_set_num_threads(4)
    seen: dict[str, int] = {}
    inside, done = threading.Event(), threading.Event()

    def other() -> None:
        faiss.omp_set_num_threads(3)
        inside.wait(5)
        seen["other"] = faiss.omp_get_max_threads()  # while the main thread is inside the block
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with omp_threads(faiss, 1):
        seen["inside"] = faiss.omp_get_max_threads()
        inside.set()
        done.wait(5)
    t.join()
    assert seen == {"inside": 1, "other": 3}
    assert faiss.omp_get_max_threads() == 4  # restored
    with omp_threads(faiss, 0):  # 0: leave as is
        assert faiss.omp_get_max_threads() == 4


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


@pytest.mark.parametrize("limit", [50_000, 0])
def test_faiss_filter_cache_follows_every_write(tmp_path: Path, limit: int) -> None:
    """Filtered searches reuse the filter's record ids only until the next write, by any handle."""
    a, b = FaissStore(tmp_path, exact_search_limit=limit), FaissStore(tmp_path, exact_search_limit=limit)
    a.configure(SPACES)
    b.configure(SPACES)
    items = [make_item(i, ("cat",) if i % 2 else ("dog",)) for i in range(60)]
    a.upsert(items)
    q = items[10].vectors["image"]  # a dog
    assert "id0010" not in {h[0] for h in a.query("image", q, 5, ["cat"])}
    b.upsert([make_item(10, ("cat",), seed=10)])  # another handle makes it a cat
    assert a.query("image", q, 1, ["cat"])[0][0] == "id0010"
    a.delete(["id0010"])
    assert "id0010" not in {h[0] for h in a.query("image", q, 5, ["cat"])}
    assert a.query("image", q, 5, ["bird"]) == []
    b.upsert([make_item(99, ("bird",))])
    assert [h[0] for h in a.query("image", q, 5, ["bird"])] == ["id0099"]
    a.close()
    b.close()
