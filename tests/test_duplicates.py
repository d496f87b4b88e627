"""The duplicate engine with weight-free models: similarity, grouping, the Extractor methods.

The real-weights checks on photos and their edited copies are in test_duplicates_offline.py.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from imgctx import (
    DEFAULT_THRESHOLD,
    REMOVE_THRESHOLD,
    Comparison,
    ConfigurationError,
    DuplicateGroup,
    DuplicateReport,
    Extractor,
    ImageNotFoundError,
    InvalidImageError,
    _cli_json,
)
from imgctx._duplicates.grouping import BUCKET_LIMIT, Items, group_indexes, hash_candidates, link
from imgctx._duplicates.similarity import combined_similarity, popcount, units_for
from imgctx.testing import settings_for_tests

# -- the combined similarity ---------------------------------------------------------------------


def test_similarity_scale_anchors() -> None:
    assert combined_similarity(0, 0, 1.0) == pytest.approx(1.0)
    # one unit (8 bits of mean hash distance, or 0.5 of cosine distance) is the 0.95 boundary
    assert combined_similarity(8, 8, 1.0) == pytest.approx(0.95)
    assert combined_similarity(0, 0, 0.5) == pytest.approx(0.95)
    assert combined_similarity(4, 4, 0.75) == pytest.approx(0.95)
    # without vectors, 17 bits of mean hash distance is the boundary
    assert combined_similarity(17, 17) == pytest.approx(0.95)
    # unrelated images (random hashes, low cosine) score far below any useful threshold
    assert combined_similarity(32, 32, 0.2) < 0.6
    assert combined_similarity(64, 64, 0.0) == 0.0
    assert units_for(0.95) == pytest.approx(1.0)
    assert units_for(0.98) == pytest.approx(np.sqrt(0.4))


@given(st.integers(0, 64), st.integers(0, 64), st.floats(-1, 1), st.integers(0, 63), st.floats(0, 0.5))
def test_similarity_is_bounded_and_monotone(dp: int, dd: int, cos: float, step: int, dcos: float) -> None:
    s = float(combined_similarity(dp, dd, cos))
    assert 0.0 <= s <= 1.0
    assert float(combined_similarity(min(64, dp + step), dd, cos)) <= s + 1e-12
    assert float(combined_similarity(dp, dd, max(-1.0, cos - dcos))) <= s + 1e-12


def test_popcount_matches_python() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2**63, 100, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    assert popcount(x).tolist() == [bin(int(v)).count("1") for v in x]


# -- grouping on synthetic items -----------------------------------------------------------------


def _items(phash: list[int], dhash: list[int], vectors: np.ndarray | None,
           content: list[str] | None = None) -> Items:
    n = len(phash)
    return Items(
        ids=[f"id{i}" for i in range(n)], paths=[f"/p/{i}.jpg" for i in range(n)],
        content=content or [f"c{i}" for i in range(n)],
        phash=np.asarray(phash, np.uint64), dhash=np.asarray(dhash, np.uint64), vectors=vectors,
        file_size=np.arange(n, dtype=np.int64)[::-1].copy(), pixels=np.arange(n, dtype=np.int64),
    )


def _brute_force_partition(items: Items, threshold: float) -> set[frozenset[int]]:
    """The linking rule applied to every pair (the reference: no candidate may be missed)."""
    n = len(items)
    pairs = np.array(list(itertools.combinations(range(n), 2)), np.int64).reshape(-1, 2)
    scores = items.weigh(pairs[:, 0], pairs[:, 1], False)[0]
    return {frozenset(m) for m in link(n, pairs[:, 0], pairs[:, 1], scores, threshold).components()}


def _partition(groups: list[tuple[int, list[int], list[float]]]) -> set[frozenset[int]]:
    return {frozenset([rep, *rest]) for rep, rest, _ in groups}


@st.composite
def _families(draw: st.DrawFn) -> tuple[Items, float]:
    """Up to 20 images: a few originals, each with near copies (bits flipped, vector nudged)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dim = 16
    ph: list[int] = []
    dh: list[int] = []
    vecs: list[np.ndarray] = []
    for _ in range(draw(st.integers(1, 5))):
        p, d = int(rng.integers(0, 2**63)), int(rng.integers(0, 2**63))
        v = rng.standard_normal(dim)
        for _ in range(draw(st.integers(1, 4))):
            flips = rng.integers(0, 64, size=int(rng.integers(0, 12)))
            mask = sum(1 << int(f) for f in set(flips.tolist()))
            ph.append(p ^ mask)
            dh.append(d ^ (mask >> 1))
            vecs.append(v + rng.normal(0, draw(st.floats(0.0, 0.6)), dim))
    matrix = np.asarray(vecs, np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return _items(ph, dh, matrix), draw(st.floats(0.5, 1.0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_families(), st.randoms(use_true_random=False))
def test_grouping_is_a_partition_equal_to_the_transitive_closure(case: tuple[Items, float], rnd) -> None:  # noqa: ANN001
    items, threshold = case
    groups = group_indexes(items, threshold)
    found = _partition(groups)
    # exhaustive: exactly what the linking rule makes of all pairs
    assert found == _brute_force_partition(items, threshold)
    members = [m for g in found for m in g]
    assert len(members) == len(set(members))  # each image in one group at most
    # symmetric: the grouping does not depend on the order the images come in
    order = list(range(len(items)))
    rnd.shuffle(order)
    shuffled = Items(
        ids=[items.ids[i] for i in order], paths=[items.paths[i] for i in order],
        content=[items.content[i] for i in order], phash=items.phash[order], dhash=items.dhash[order],
        vectors=None if items.vectors is None else items.vectors[order],
        file_size=items.file_size[order], pixels=items.pixels[order],
    )
    again = _partition(group_indexes(shuffled, threshold))
    assert again == _brute_force_partition(shuffled, threshold)
    for rep, rest, scores in groups:
        assert rep < min(rest)  # keep="first": the earliest image represents the group
        assert all(0.0 <= s <= 1.0 for s in scores)


def test_keep_policies_choose_the_representative() -> None:
    items = _items([5, 5, 5], [9, 9, 9], None)
    items.file_size[:] = [10, 30, 20]
    items.pixels[:] = [100, 50, 400]
    assert group_indexes(items, 0.95, "first")[0][0] == 0
    assert group_indexes(items, 0.95, "largest")[0][0] == 1
    assert group_indexes(items, 0.95, "highest-resolution")[0][0] == 2


def test_exact_copies_group_whatever_their_hashes() -> None:
    items = _items([0, 2**63, 12345], [0, 2**62, 999], None, content=["same", "same", "other"])
    groups = group_indexes(items, 1.0)
    assert _partition(groups) == {frozenset({0, 1})}
    assert groups[0][2] == [1.0]


def test_a_huge_bucket_of_identical_hashes_stays_linear() -> None:
    """Thousands of blank images share every hash chunk: the pairs per image stay bounded."""
    n = 20 * BUCKET_LIMIT
    items = _items([0] * n, [0] * n, None)
    i, _ = hash_candidates(items)
    assert len(i) <= n * 8 * 8  # eight chunks, a window of eight
    groups = group_indexes(items, 0.95)
    assert _partition(groups) == {frozenset(range(n))}


def test_large_sets_use_the_approximate_search_and_still_find_the_copies() -> None:
    """Past the exact-search limit, vectors are projected and searched with IVF. The planted
    copies differ by 1 bit in every 16-bit hash chunk, so the hash index cannot pair them and
    only the vector index can; they are still grouped."""
    rng = np.random.default_rng(7)
    n, dim, copies = 6000, 256, 300
    base = rng.standard_normal((n, dim)).astype(np.float32)
    source = rng.choice(n, copies, replace=False)
    noisy = base[source] + 0.15 * rng.standard_normal((copies, dim)).astype(np.float32)
    vectors = np.concatenate([base, noisy])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ph = rng.integers(0, 2**63, n, dtype=np.uint64)
    dh = rng.integers(0, 2**63, n, dtype=np.uint64)
    flips = np.uint64(sum(1 << (16 * c + 3) for c in range(4)))
    items = _items(np.concatenate([ph, ph[source] ^ flips]).tolist(),
                   np.concatenate([dh, dh[source] ^ flips]).tolist(), vectors)
    planted = {(int(s), n + k) for k, s in enumerate(source)}
    i, j = hash_candidates(items)
    assert not set(zip(i.tolist(), j.tolist(), strict=True)) & planted  # invisible to the hash index
    partition = _partition(group_indexes(items, 0.95))
    assert partition == {frozenset(pair) for pair in planted}


# -- the Extractor methods (tiny models, real faiss store) -----------------------------------------


def _edit(src: Path, folder: Path) -> dict[str, Path]:
    """A photo's edited copies: byte copy, resize, recompress, brightness, format change."""
    with Image.open(src) as im:
        img = im.convert("RGB")
    out = {"copy": folder / f"{src.stem}_copy.jpg", "resize": folder / f"{src.stem}_small.jpg",
           "jpeg": folder / f"{src.stem}_q40.jpg", "bright": folder / f"{src.stem}_bright.jpg",
           "png": folder / f"{src.stem}_png.png"}
    shutil.copy(src, out["copy"])
    img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS).save(out["resize"], quality=90)
    img.save(out["jpeg"], quality=40)
    ImageEnhance.Brightness(img).enhance(1.15).save(out["bright"], quality=90)
    img.save(out["png"])
    return out


@pytest.fixture
def collection(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    _edit(folder / "chelsea.jpg", folder)
    _edit(folder / "coffee.jpg", folder)
    return folder


def _names(group_paths: tuple[str, ...]) -> set[str]:
    return {Path(p).name for p in group_paths}


def test_find_duplicates_in_a_directory_leaves_the_store_alone(tiny: Extractor, collection: Path) -> None:
    (collection / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    report = tiny.find_duplicates(directory=collection)
    assert isinstance(report, DuplicateReport)
    assert tiny.count() == 0
    assert [Path(f.path).name for f in report.failed_files] == ["broken.jpg"]
    groups = {Path(g.representative_path).name: g for g in report.groups}
    assert _names(groups["chelsea.jpg"].paths) == {
        "chelsea.jpg", "chelsea_copy.jpg", "chelsea_small.jpg", "chelsea_q40.jpg", "chelsea_bright.jpg", "chelsea_png.png"}
    assert _names(groups["coffee.jpg"].paths) == {
        "coffee.jpg", "coffee_copy.jpg", "coffee_small.jpg", "coffee_q40.jpg", "coffee_bright.jpg", "coffee_png.png"}
    chelsea = groups["chelsea.jpg"]
    exact = dict(zip(_names_list(chelsea.paths[1:]), chelsea.exact, strict=True))
    assert exact["chelsea_copy.jpg"] and not exact["chelsea_png.png"]
    assert report.total_duplicates == 10 and report.total_images == 16
    assert all(s >= DEFAULT_THRESHOLD for g in report.groups for s in g.similarity_scores)
    data = _cli_json.duplicates(report)
    assert set(data) >= {"total_images", "duplicate_groups", "total_duplicates", "check_time", "message"}
    assert set(data["duplicate_groups"][0]) >= {"representative_id", "duplicate_ids", "similarity_scores", "paths"}
    assert data["message"] == "Found 2 duplicate groups with 10 duplicate images"


def _names_list(paths: tuple[str, ...]) -> list[str]:
    return [Path(p).name for p in paths]


def test_find_duplicates_over_the_store_matches_the_directory_run(tiny: Extractor, collection: Path) -> None:
    tiny.process_directory(collection)
    stored = tiny.find_duplicates()
    listed = tiny.find_duplicates(directory=collection)
    assert [g.paths for g in stored.groups] == [g.paths for g in listed.groups]
    assert stored.total_images == tiny.count() == 16
    assert [g.representative_id for g in stored.groups] == [g.representative_id for g in listed.groups]


def test_stricter_threshold_never_adds_duplicates(tiny: Extractor, collection: Path) -> None:
    tiny.process_directory(collection)
    counts = [tiny.find_duplicates(t).total_duplicates for t in (0.9, 0.95, 0.98, 0.999, 1.0)]
    assert counts == sorted(counts, reverse=True)
    exact = tiny.find_duplicates(1.0)  # only byte-identical copies and identical pixels remain
    assert counts[-1] >= 2
    for g in exact.groups:
        for path in g.paths[1:]:
            c = tiny.compare(g.representative_path, path)
            assert c.exact or (c.phash_distance == c.dhash_distance == 0 and c.similarity == 1.0)


def test_check_image_finds_the_copies_and_not_itself(tiny: Extractor, collection: Path) -> None:
    tiny.process_directory(collection)
    matches = tiny.check_image(collection / "chelsea.jpg")
    names = [m.record.filename for m in matches]
    assert "chelsea.jpg" not in names
    assert names[0] == "chelsea_copy.jpg" and matches[0].comparison.exact and matches[0].similarity == 1.0
    assert set(names) == {"chelsea_copy.jpg", "chelsea_small.jpg", "chelsea_q40.jpg", "chelsea_bright.jpg", "chelsea_png.png"}
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
    assert len(tiny.check_image(collection / "chelsea.jpg", limit=2)) == 2
    assert tiny.check_image(collection / "rocket.jpg") == []


def test_compare_reports_every_metric(tiny: Extractor, collection: Path) -> None:
    same = tiny.compare(collection / "chelsea.jpg", collection / "chelsea_copy.jpg")
    assert isinstance(same, Comparison)
    assert same.exact and same.similarity == 1.0 and same.phash_distance == 0 and same.is_duplicate
    near = tiny.compare(collection / "chelsea.jpg", collection / "chelsea_q40.jpg")
    back = tiny.compare(collection / "chelsea_q40.jpg", collection / "chelsea.jpg")
    assert near == back  # symmetric
    assert not near.exact and near.is_duplicate and near.embedding_cosine is not None
    far = tiny.compare(collection / "chelsea.jpg", collection / "rocket.jpg")
    assert not far.is_duplicate and far.phash_distance > 10
    assert far.similarity == pytest.approx(float(combined_similarity(far.phash_distance, far.dhash_distance, far.embedding_cosine)))
    assert set(_cli_json.comparison(far)) == {"similarity", "is_duplicate", "threshold", "exact", "phash_distance",
                                  "dhash_distance", "hash_similarity", "embedding_cosine", "embedding_similarity",
                                  "reason", "orientation", "turned_hash_distance", "geometric_inliers",
                                  "geometric_contained", "geometric_overlap"}
    assert tiny.count() == 0  # comparing indexes nothing


def test_bad_input_is_a_clear_error(tiny: Extractor, collection: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError):
        tiny.compare(collection / "chelsea.jpg", tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(InvalidImageError):
        tiny.check_image(tmp_path / "bad.jpg")
    with pytest.raises(ImageNotFoundError):
        tiny.find_duplicates(directory=tmp_path / "nowhere")
    for bad in (1.5, -0.1, "0.9", True):
        with pytest.raises(ConfigurationError, match="threshold"):
            tiny.find_duplicates(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="keep policy"):
        tiny.remove_duplicates(keep="smallest")
    with pytest.raises(ConfigurationError, match="limit"):
        tiny.check_image(collection / "chelsea.jpg", limit=0)


def _snapshot(ex: Extractor, folder: Path) -> tuple[int, list[str], list[tuple[str, int]]]:
    files = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    return ex.count(), [r.id for r in ex.list(limit=1000)], files


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=st.floats(0.0, 1.0), keep=st.sampled_from(["first", "largest", "highest-resolution"]),
       delete_files=st.booleans())
def test_a_dry_run_changes_nothing(indexed: tuple[Extractor, Path], threshold: float, keep: str,
                                   delete_files: bool) -> None:
    ex, folder = indexed
    before = _snapshot(ex, folder)
    report = ex.remove_duplicates(threshold, dry_run=True, keep=keep, delete_files=delete_files)
    assert _snapshot(ex, folder) == before
    assert report.dry_run and report.files_deleted == ()
    members = {rid: score for g in report.groups
               for rid, score in zip(g.duplicate_ids, g.similarity_scores, strict=True)}
    assert sorted([*report.removed_ids, *report.left_ids]) == sorted(members)
    assert all(members[rid] >= threshold for rid in report.removed_ids)  # each like the kept image
    assert set(report.kept_ids).isdisjoint(report.removed_ids)


@pytest.fixture
def indexed(tiny: Extractor, collection: Path) -> tuple[Extractor, Path]:
    tiny.process_directory(collection)
    return tiny, collection


def test_remove_duplicates_applies_the_keep_policy(indexed: tuple[Extractor, Path]) -> None:
    ex, folder = indexed
    report = ex.remove_duplicates(dry_run=False, keep="highest-resolution")
    assert not report.dry_run and report.threshold == REMOVE_THRESHOLD
    kept = {Path(g.representative_path).name for g in report.groups}
    assert "chelsea_small.jpg" not in kept and "coffee_small.jpg" not in kept
    assert ex.count() == 16 - len(report.removed_ids)
    assert all(ex.store.get(rid) is None for rid in report.removed_ids)
    assert all(ex.store.get(rid) is not None for rid in report.kept_ids)
    assert all(Path(p).exists() for p in report.removed_paths)  # records only, files stay
    assert ex.find_duplicates(REMOVE_THRESHOLD).groups == ()


def test_remove_duplicates_can_delete_the_files(indexed: tuple[Extractor, Path]) -> None:
    ex, folder = indexed
    sizes = {str(p): p.stat().st_size for p in folder.iterdir()}  # measured before the removal
    report = ex.remove_duplicates(DEFAULT_THRESHOLD, dry_run=False, keep="largest", delete_files=True)
    assert report.files_deleted and set(report.files_deleted) == set(report.removed_paths)
    assert not any(Path(p).exists() for p in report.removed_paths)
    assert all(Path(g.representative_path).exists() for g in report.groups)
    # the kept file of every group is its largest file (and the groups have files of several sizes)
    assert all(sizes[g.representative_path] == max(sizes[p] for p in g.paths) for g in report.groups)
    assert any(len({sizes[p] for p in g.paths}) > 1 for g in report.groups)


def test_remove_duplicates_never_deletes_the_file_behind_a_kept_link(tiny: Extractor, tmp_path: Path,
                                                                     photo_dir: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    original = folder / "zz_original.jpg"
    shutil.copy(photo_dir / "chelsea.jpg", original)
    (folder / "aa_link.jpg").symlink_to(original)
    tiny.process_directory(folder)
    dry = tiny.remove_duplicates(dry_run=True, keep="first", delete_files=True)
    report = tiny.remove_duplicates(dry_run=False, keep="first", delete_files=True)
    assert dry.removed_ids == report.removed_ids and dry.failed_files == report.failed_files
    assert _names_list(report.removed_paths) and report.files_deleted == ()
    assert original.exists() and (folder / "aa_link.jpg").resolve() == original
    assert "same file as the kept" in report.failed_files[0].reason or "symbolic link" in report.failed_files[0].reason


def test_remove_duplicates_leaves_a_file_changed_since_indexing(indexed: tuple[Extractor, Path],
                                                                photo_dir: Path) -> None:
    ex, folder = indexed
    target = folder / "chelsea_copy.jpg"
    assert target.exists()
    shutil.copy(photo_dir / "rocket.jpg", target)  # now another photo, under the indexed name
    report = ex.remove_duplicates(dry_run=False, keep="first", delete_files=True)
    assert target.exists()
    assert str(target) not in report.removed_paths and str(target) not in report.files_deleted
    assert any(f.path == str(target) and "changed since it was indexed" in f.reason for f in report.failed_files)
    assert ex.store.get_by_path(str(target)) is not None
    assert all(not Path(p).exists() for p in report.files_deleted)


def test_remove_duplicates_keeps_members_linked_only_through_another(tiny: Extractor) -> None:
    from imgctx._duplicates import Duplicates

    class Chain(Duplicates):
        """A group A ~ B ~ C whose C is below the threshold against the kept A."""

        def find_duplicates(self, threshold, directory, recursive, image=None, keep="first"):  # type: ignore[no-untyped-def]
            group = DuplicateGroup(representative_id="a", duplicate_ids=("b", "c"),
                                   similarity_scores=(0.99, 0.90), paths=("/x/a.jpg", "/x/b.jpg", "/x/c.jpg"),
                                   exact=(False, False))
            return DuplicateReport(groups=(group,), total_images=3, total_duplicates=2, threshold=threshold,
                                   check_time=0.0, failed_files=())

    engine = Chain(tiny.components, tiny.store, tiny.settings, lambda: None)
    report = engine.remove_duplicates(0.95, dry_run=True, keep="first", delete_files=False)
    assert report.removed_ids == ("b",) and report.left_ids == ("c",) and report.kept_ids == ("a",)


def test_an_empty_store_or_folder_has_no_duplicates(tiny: Extractor, tmp_path: Path) -> None:
    report = tiny.find_duplicates()
    assert report.groups == () and report.total_images == 0 and report.total_duplicates == 0
    (tmp_path / "empty").mkdir()
    assert tiny.find_duplicates(directory=tmp_path / "empty").total_images == 0
    assert tiny.remove_duplicates(dry_run=False).removed_ids == ()


def test_duplicates_with_the_memory_store(tmp_path: Path, collection: Path) -> None:
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), store="memory") as ex:
        ex.process_directory(collection)
        report = ex.find_duplicates()
        assert report.total_duplicates == 10
        assert ex.check_image(collection / "coffee_png.png")[0].record.filename in {"coffee.jpg", "coffee_copy.jpg"}


def test_duplicates_without_an_image_embedder_use_the_hashes(tmp_path: Path, collection: Path) -> None:
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny"), image_embedder=None,
                   store="memory") as ex:
        ex.components.image_embedder = None
        cmp = ex.compare(collection / "chelsea.jpg", collection / "chelsea_q40.jpg")
        assert cmp.embedding_cosine is None and cmp.similarity == pytest.approx(cmp.hash_similarity)
        report = ex.find_duplicates(directory=collection)
        assert {Path(g.representative_path).name for g in report.groups} == {"chelsea.jpg", "coffee.jpg"}
        ex.process_directory(collection)
        assert ex.find_duplicates().total_duplicates == report.total_duplicates
        matches = ex.check_image(collection / "coffee_q40.jpg")  # scans the stored hashes
        assert {m.record.filename for m in matches} == {
            "coffee.jpg", "coffee_copy.jpg", "coffee_small.jpg", "coffee_bright.jpg", "coffee_png.png"}
        assert all(m.comparison.embedding_cosine is None for m in matches)
