"""Duplicates that survive what people do to photos (issue 17): border trimming, orientation
hashes, the geometric check, the evidence rule, the weak-link rule, the new record field."""

from __future__ import annotations

import io
import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from imgctx import Extractor, Settings
from imgctx._backends.faiss_store import FaissStore
from imgctx._duplicates import evidence, geometry, grouping
from imgctx._duplicates.geometry import features_of, match, opencv
from imgctx._duplicates.grouping import Items, link
from imgctx._fingerprint import border_box, orientation_hashes, parse_orient_hashes, trim_borders
from imgctx._store_conformance import SPACES, make_item
from imgctx._testkit import sample_photo_path
from imgctx.testing import settings_for_tests

needs_opencv = pytest.mark.skipif(opencv() is None, reason="OpenCV is not installed (extra: duplicates)")


def _photo(photo_dir: Path, name: str = "chelsea.jpg") -> Image.Image:
    with Image.open(photo_dir / name) as im:
        return im.convert("RGB")


def _bits(a: int, b: int) -> int:
    return bin(a ^ b).count("1")


# -- borders and orientation hashes ----------------------------------------------------------------


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (30, 30, 30)])
def test_letterbox_bars_are_trimmed_and_a_photo_is_left_alone(photo_dir: Path, colour: tuple[int, int, int]) -> None:
    photo = _photo(photo_dir)
    w, h = photo.size
    framed = Image.new("RGB", (w, h + 120), colour)
    framed.paste(photo, (0, 60))
    left, top, right, bottom = border_box(framed)
    assert (left, right) == (0, w) and abs(top - 60) <= 2 and abs(bottom - (60 + h)) <= 2
    assert trim_borders(photo) is photo  # no border: the same image


def test_a_plain_background_is_kept_so_a_photo_and_its_framed_copy_trim_alike() -> None:
    rng = np.random.default_rng(0)
    # a photo whose left half is a smooth grey gradient and a noisy field, its right half detail
    w, h = 300, 200
    a = np.empty((h, w, 3), np.uint8)
    a[:, :150] = (120 + np.linspace(0, 30, 150)[None, :, None] + rng.normal(0, 6, (h, 150, 1))).clip(0, 255)
    a[:, 150:] = rng.integers(0, 256, (h, 150, 1))
    photo = Image.fromarray(a)
    assert border_box(photo) == (0, 0, w, h)  # the background drifts and frays: no step, no trim
    framed = Image.new("RGB", (w + 160, h), (24, 24, 24))
    framed.paste(photo, (80, 0))
    left, top, right, bottom = border_box(framed)
    assert abs(left - 80) <= 4 and abs(right - (80 + w)) <= 4 and (top, bottom) == (0, h)


def test_the_edge_line_shortcut_gives_the_box_of_the_full_band_test(photo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """border_box rules out most pictures from their four edge lines resized alone; on framed,
    plain-edged and near-uniform pictures that must give exactly what the full test gives."""
    from imgctx import _fingerprint

    rng = np.random.default_rng(7)
    pictures = []
    for path in sorted(photo_dir.glob("*.jpg")):
        photo = _photo(photo_dir, path.name)
        pictures.append(photo)
        w, h = photo.size
        for _ in range(4):  # unframed: crops
            x, y = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
            pictures.append(photo.crop((x, y, x + w // 2, y + h // 2)))
        for _ in range(6):
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            pad = (int(rng.integers(0, 60)), int(rng.integers(0, 60)), int(rng.integers(0, 60)), int(rng.integers(0, 60)))
            framed = Image.new("RGB", (w + pad[0] + pad[2], h + pad[1] + pad[3]), colour)
            framed.paste(photo, pad[:2])
            pictures.append(framed)
    for _ in range(60):  # near-uniform edges: a band of noise around one colour over random pixels
        h, w = int(rng.integers(170, 400)), int(rng.integers(170, 400))
        a = rng.integers(0, 256, (h, w, 3)).astype(np.int16)
        rows = int(rng.integers(1, h // 2))
        a[:rows] = rng.integers(0, 256, 3) + rng.integers(-28, 29, (rows, w, 3))
        pictures.append(Image.fromarray(a.clip(0, 255).astype(np.uint8)))
    fast = [border_box(p) for p in pictures]
    ruled_out = sum(not _fingerprint._may_have_band(p, *_sample_size(p)) for p in pictures)
    monkeypatch.setattr(_fingerprint, "_may_have_band", lambda image, sw, sh: True)
    assert [border_box(p) for p in pictures] == fast
    trimmed = sum(box != (0, 0, *p.size) for box, p in zip(fast, pictures))
    assert ruled_out >= 15 and trimmed >= 30, (ruled_out, trimmed)  # both paths were taken


def _sample_size(image: Image.Image) -> tuple[int, int]:
    w, h = image.size
    scale = min(1.0, 160 / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def test_orientation_hashes_match_quarter_turns_and_mirrors(photo_dir: Path) -> None:
    photo = _photo(photo_dir, "coffee.jpg")
    table = parse_orient_hashes([orientation_hashes(photo)])[0]
    for transpose, t in ((Image.Transpose.ROTATE_90, 1), (Image.Transpose.ROTATE_180, 2),
                         (Image.Transpose.ROTATE_270, 3), (Image.Transpose.FLIP_LEFT_RIGHT, 4)):
        turned = parse_orient_hashes([orientation_hashes(photo.transpose(transpose))])[0]
        assert _bits(int(table[t]), int(turned[0])) <= 2  # pHash of the turned image
        assert _bits(int(table[8 + t]), int(turned[8])) <= 2  # dHash
        assert _bits(int(table[0]), int(turned[0])) > 12  # upright hashes do not match
    gray = parse_orient_hashes([orientation_hashes(photo.convert("L").convert("RGB"))])[0]
    assert _bits(int(table[0]), int(gray[0])) <= 2  # luminance hashes: grayscale-tolerant


def test_malformed_or_missing_orientation_hashes_are_zero_rows() -> None:
    table = parse_orient_hashes(["", "xyz", "0" * 255 + "g"])
    assert table.shape == (3, 16) and not table.any()


# -- the geometric check ---------------------------------------------------------------------------


@needs_opencv
def test_geometric_check_accepts_a_crop_and_rejects_overlapping_parts(photo_dir: Path) -> None:
    photo = _photo(photo_dir, "coffee.jpg")
    w, h = photo.size
    crop = photo.crop((int(0.12 * w), int(0.05 * h), int(0.92 * w), int(0.85 * h)))
    m = match(features_of(crop), features_of(photo))
    assert m.is_match and m.contained > 0.95 and 0.55 < m.overlap < 0.75
    turned = match(features_of(photo.transpose(Image.Transpose.ROTATE_90)), features_of(photo))
    assert turned.is_match and abs(abs(turned.rotation) - 90) < 3
    part = round(w * 0.56)
    left, right = photo.crop((0, 0, part, h)), photo.crop((w - part, 0, w, h))
    views = match(features_of(left), features_of(right))
    assert not views.is_match and views.contained < 0.4  # another view of the scene
    sim, reason = evidence.apply_check(0.96, evidence.UPRIGHT, views)
    if views.is_confident:
        assert sim < 0.95 and reason == evidence.PARTIAL  # the veto


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return im.convert("RGB")


def _tile(photo: Image.Image, row: int, col: int) -> Image.Image:
    w, h = photo.size
    return _jpeg(photo.crop((col * w // 3, row * h // 3, (col + 1) * w // 3, (row + 1) * h // 3)), 90)


@needs_opencv
@pytest.mark.parametrize(("name", "row", "col", "corner"), [("astronaut.jpg", 0, 2, False), ("motorcycle_left.jpg", 2, 1, True)])
def test_a_shrunk_compressed_crop_matches_by_aligned_detail(photo_dir: Path, name: str, row: int, col: int,
                                                             corner: bool) -> None:
    # a small picture's crop to 80% of each side, shrunk to half and saved at JPEG quality 20:
    # its agreeing keypoints cluster on the one textured spot (too little spread to trust alone)
    tile = _tile(_photo(photo_dir, name), row, col)
    w, h = tile.size
    cw, ch = round(w * 0.8), round(h * 0.8)
    left, top = (w - cw, h - ch) if corner else (0, 0)
    small = _jpeg(tile.crop((left, top, left + cw, top + ch)).resize((cw // 2, ch // 2), Image.Resampling.LANCZOS), 20)
    m = match(features_of(small), features_of(tile))
    assert not m.is_confident  # the keypoints alone would miss it
    assert m.agreement >= geometry.MIN_AGREEMENT and m.is_aligned and m.is_match
    assert m.contained > 0.9
    sim, reason = evidence.apply_check(0.3, evidence.UPRIGHT, m)
    assert sim >= 0.95 and reason == evidence.GEOMETRIC
    assert "detail agrees" in evidence.Verdict(sim, reason, 0, m).describe()  # the reason says why


def _sample(name: str) -> Image.Image:
    with Image.open(sample_photo_path(name)) as im:
        return _jpeg(im.convert("RGB"), 90)


def _watermarked(picture: Image.Image) -> Image.Image:
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    font = ImageFont.load_default(picture.width // 5)
    box = draw.textbbox((0, 0), "© SAMPLE", font=font, stroke_width=2)
    xy = ((picture.width - box[2]) // 2, (picture.height - box[3]) // 2)
    draw.text(xy, "© SAMPLE", font=font, fill=(255, 255, 255, 140), stroke_width=2, stroke_fill=(0, 0, 0, 140))
    return _jpeg(Image.alpha_composite(picture.convert("RGBA"), layer).convert("RGB"), 90)


@needs_opencv
def test_a_shared_watermark_does_not_make_different_pictures_agree(photo_dir: Path) -> None:
    photo = _photo(photo_dir, "hubble_deep_field.jpg")

    m = match(features_of(_watermarked(_tile(photo, 0, 0))), features_of(_watermarked(_tile(photo, 2, 0))))
    assert m.inliers >= geometry.MIN_INLIERS  # the text's keypoints agree ...
    assert m.spread < geometry.MIN_SPREAD and m.agreement < 0.4  # ... and nothing else does
    assert not m.is_match


def _crop_small(picture: Image.Image, left: int, top: int) -> tuple[Image.Image, Image.Image]:
    """A crop to 80% of each side at (left, top), and that crop shrunk to half at JPEG quality 20."""
    w, h = picture.size
    cw, ch = round(w * 0.8), round(h * 0.8)
    crop = picture.crop((left, top, left + cw, top + ch))
    return _jpeg(crop, 90), _jpeg(crop.resize((cw // 2, ch // 2), Image.Resampling.LANCZOS), 20)


@needs_opencv
def test_a_crop_of_a_picture_without_keypoints_matches_by_its_pixels() -> None:
    # scikit-image's colour wheel: smooth, not one ORB keypoint; its crops are found by searching
    # one picture inside the other, and its watermarked copy by comparing them cell by cell
    wheel = _sample("color")
    crop, small = _crop_small(wheel, 20, 10)
    assert len(features_of(wheel).points) == 0
    for copy, overlap in ((crop, 0.64), (small, 0.64), (_watermarked(wheel), 1.0)):
        assert not geometry.keypoint_match(features_of(copy), features_of(wheel)).is_match
        m = match(features_of(copy), features_of(wheel))
        assert m.is_pixel_aligned and m.is_match and m.cells >= geometry.PIXEL_CELLS
        assert abs(m.overlap - overlap) < 0.06
        sim, reason = evidence.apply_check(0.8, evidence.UPRIGHT, m)
        assert sim >= 0.95 and reason == evidence.GEOMETRIC
        assert "found inside the other by its pixels" in evidence.Verdict(sim, reason, 0, m).describe()


@needs_opencv
def test_a_tiny_crop_whose_keypoints_fit_nothing_matches_by_its_pixels(photo_dir: Path) -> None:
    # the bottom-right ninth of the astronaut photo, cropped and shrunk to 68 pixels at quality 20:
    # its keypoints' matches pile onto one spot, and the fitted transform is degenerate
    tile = _tile(_photo(photo_dir, "astronaut.jpg"), 2, 2)
    _, small = _crop_small(tile, 18, 24)
    keypoints = geometry.keypoint_match(features_of(small), features_of(tile))
    assert not keypoints.is_match and not keypoints.is_confident
    m = match(features_of(small), features_of(tile))
    assert m.is_pixel_aligned and m.is_match and abs(m.overlap - 0.64) < 0.06


@needs_opencv
def test_the_pixel_search_does_not_match_other_views_turned_corners_or_shared_watermarks(photo_dir: Path) -> None:
    coffee = _photo(photo_dir, "coffee.jpg")
    w, h = coffee.size
    part = round(w * 0.56)
    left, right = coffee.crop((0, 0, part, h)), coffee.crop((w - part, 0, w, h))
    assert geometry.pixel_match(features_of(left), features_of(right)).cells < geometry.PIXEL_CELLS
    # two corners of a round retina scan, one turned onto the other: nearly blank, and the rim of
    # the eye lines up; only a few cells' detail agrees
    retina = _sample("retina")
    corner = _tile(retina, 0, 0).transpose(Image.Transpose.ROTATE_90)
    other = geometry.pixel_match(features_of(corner), features_of(_tile(retina, 2, 0)))
    assert 0 < other.cells < geometry.PIXEL_CELLS and not other.is_match
    hubble = _photo(photo_dir, "hubble_deep_field.jpg")
    marked = [features_of(_watermarked(_tile(hubble, r, 0))) for r in (0, 2)]
    assert geometry.pixel_match(*marked).cells < geometry.PIXEL_CELLS


@needs_opencv
def test_a_shared_watermark_on_two_parts_of_a_brick_wall_is_no_pixel_match() -> None:
    # the centre and bottom-middle ninths of scikit-image's brick wall, each with the same large
    # watermark: the text spans two rows of cells and its detail agrees in seven of nine, but the
    # grey levels where one fits best in the other do not correlate: different pictures
    brick = _sample("brick")
    w, h = brick.size
    tiles = [brick.crop((w // 3, r * h // 3, 2 * w // 3, (r + 1) * h // 3)) for r in (1, 2)]
    a, b = (features_of(_watermarked(t)) for t in tiles)
    found = geometry.pixel_match(a, b)
    assert found.cells >= geometry.PIXEL_CELLS  # the overlay's detail agrees ...
    assert found.fit < geometry.PIXEL_FIT and not found.is_pixel_aligned and not found.is_match  # ... the light does not
    assert not match(a, b).is_match
    # while the watermarked wall and a crop of it (light and detail agreeing) still match by pixels
    crop, small = _crop_small(tiles[0], 10, 12)
    for copy in (crop, small):
        m = geometry.pixel_match(features_of(copy), a)
        assert m.is_match and m.fit >= geometry.PIXEL_FIT


@needs_opencv
def test_a_large_watermark_on_parts_of_one_photo_is_no_keypoint_match(tmp_path: Path) -> None:
    # the four quarters of scikit-image's motion-blurred clock, each with the same large
    # watermark, as files (read as find_duplicates reads them: borders trimmed): hundreds of
    # keypoints on the text agree with no shift, spread along its band, but the photos around it
    # do not agree: refuted, never joined
    clock = _sample("clock_motion")
    w, h = clock.size
    quarters = [clock.crop((x, y, x + w // 2, y + h // 2)) for y in (0, h // 2) for x in (0, w // 2)]
    marked = []
    for k, q in enumerate(quarters):
        _watermarked(q).save(tmp_path / f"q{k}_marked.jpg", quality=95)
        marked.append(geometry.file_features(tmp_path / f"q{k}_marked.jpg", 10**8, 10**8))
    found = [geometry.keypoint_match(marked[i], marked[j]) for i in range(4) for j in range(i + 1, 4)]
    assert any(m.refuted and m.inliers >= geometry.MIN_INLIERS and m.spread >= geometry.MIN_SPREAD for m in found)
    assert all(not m.is_match for m in found)
    assert all(not match(marked[i], marked[j]).is_match for i in range(4) for j in range(i + 1, 4))
    # while a photo with texture of its own still matches its watermarked copy
    for name in ("chelsea", "coffee"):
        photo = _sample(name)
        photo.save(tmp_path / f"{name}.jpg", quality=95)
        _watermarked(photo).save(tmp_path / f"{name}_marked.jpg", quality=95)
        a, b = (geometry.file_features(tmp_path / f, 10**8, 10**8) for f in (f"{name}.jpg", f"{name}_marked.jpg"))
        assert match(a, b).is_match


# -- grouping: never through one weak link --------------------------------------------------------


def test_two_groups_are_not_merged_through_one_weak_link() -> None:
    # {0,1} and {2,3} are certain pairs; one pair 1-2 at the threshold must not join them
    i, j = np.array([0, 2, 1]), np.array([1, 3, 2])
    uf = link(4, i, j, np.array([0.999, 0.999, 0.96]), 0.95)
    assert sorted(uf.components()) == [[0, 1], [2, 3]]
    # two such pairs do join them, and so does one certain pair
    uf = link(4, np.array([0, 2, 1, 0]), np.array([1, 3, 2, 3]), np.array([0.999, 0.999, 0.96, 0.96]), 0.95)
    assert uf.components() == [[0, 1, 2, 3]]
    uf = link(4, i, j, np.array([0.999, 0.999, 0.99]), 0.95)
    assert uf.components() == [[0, 1, 2, 3]]
    # a single image still joins a group through one pair
    uf = link(3, np.array([0, 1]), np.array([1, 2]), np.array([0.999, 0.96]), 0.95)
    assert uf.components() == [[0, 1, 2]]


def test_two_links_through_one_image_do_not_merge_groups() -> None:
    # {0,1} and {2,3}: image 1 looks like both 2 and 3 (a near-blank picture, a symmetric one
    # turned); that is still one weak link
    i, j = np.array([0, 2, 1, 1]), np.array([1, 3, 2, 3])
    uf = link(4, i, j, np.array([0.999, 0.999, 0.97, 0.96]), 0.95)
    assert sorted(uf.components()) == [[0, 1], [2, 3]]
    # the same from the other side: 0 and 1 both look like image 2 only
    uf = link(4, np.array([0, 2, 0, 1]), np.array([1, 3, 2, 2]), np.array([0.999, 0.999, 0.97, 0.96]), 0.95)
    assert sorted(uf.components()) == [[0, 1], [2, 3]]


def test_a_copy_crowded_by_look_alikes_still_gets_its_original_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # image 0 is a copy of image 14; images 1-13 are look-alikes (other tiles of one telescope
    # photo, sharing a watermark): closer to 0 by vector than its original, far by hashes
    rng = np.random.default_rng(0)
    n, dim = 15, 64
    basis = np.linalg.qr(rng.standard_normal((dim, n + 1)))[0].T  # orthonormal rows
    vectors = np.empty((n, dim), np.float32)
    vectors[0] = basis[0]
    for k in range(1, n):
        c = 0.8 if k == 14 else 0.9
        vectors[k] = c * basis[0] + np.sqrt(1 - c * c) * basis[k]
    phash = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    dhash = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    phash[14], dhash[14] = phash[0] ^ np.uint64(0x3FF), dhash[0] ^ np.uint64(0x3FF)  # 10 bits apart
    items = Items(ids=[str(k) for k in range(n)], paths=[str(k) for k in range(n)],
                  content=[str(k) for k in range(n)], phash=phash, dhash=dhash, vectors=vectors,
                  file_size=np.ones(n, np.int64), pixels=np.ones(n, np.int64))
    assert items.score(np.array([0]), np.array([14]))[0] < 0.95  # below the threshold without the check

    def fake_match(a: geometry.Features, b: geometry.Features) -> geometry.GeometricMatch:
        if {a.size[0], b.size[0]} == {0, 14}:
            return geometry.GeometricMatch(50, 60, 1.0, 0.9, 0.0, 1.0, 0.5)
        return geometry.NO_MATCH

    monkeypatch.setattr(grouping, "match", fake_match)
    features = lambda k: geometry.Features(np.zeros((0, 2), np.float32), None, (k, 1))  # noqa: E731
    groups = grouping.group_indexes(items, 0.95, features=features)
    assert [(rep, rest) for rep, rest, _ in groups] == [(0, [14])]
    monkeypatch.setattr(evidence, "VERIFY_EXTRA", 0)  # the vector order alone never reaches it
    assert grouping.group_indexes(items, 0.95, features=features) == []


# -- the Extractor ----------------------------------------------------------------------------------


@pytest.fixture
def edited(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "edited"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(photo_dir / name, folder / name)
    photo = _photo(photo_dir, "chelsea.jpg")
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "chelsea_turned.jpg", quality=90)
    photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "chelsea_mirrored.jpg", quality=90)
    w, h = photo.size
    framed = Image.new("RGB", (w, h + 200), (0, 0, 0))
    framed.paste(photo, (0, 100))
    framed.save(folder / "chelsea_letterbox.jpg", quality=90)
    return folder


def test_a_turned_copy_matches_with_its_reason_and_a_mirror_only_when_asked(tmp_path: Path, edited: Path) -> None:
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny")) as ex:
        turned = ex.compare(edited / "chelsea.jpg", edited / "chelsea_turned.jpg")
        assert turned.is_duplicate and turned.orientation in ("rotated 90", "rotated 270")
        assert turned.reason.startswith("hashes agree when the image is rotated") and turned.similarity < 1.0
        assert turned.turned_hash_distance is not None and turned.turned_hash_distance <= 2
        mirrored = ex.compare(edited / "chelsea.jpg", edited / "chelsea_mirrored.jpg")
        assert not mirrored.is_duplicate and mirrored.orientation == "upright"
        framed = ex.compare(edited / "chelsea.jpg", edited / "chelsea_letterbox.jpg")
        assert framed.is_duplicate and framed.phash_distance <= 4  # bars trimmed before hashing
        other = ex.compare(edited / "chelsea.jpg", edited / "rocket.jpg")
        assert not other.is_duplicate and other.reason
    settings = settings_for_tests(tmp_path / "db2", preset="tiny")
    with Extractor(settings=settings.model_copy(update={"duplicate_mirrors": True})) as ex:
        mirrored = ex.compare(edited / "chelsea.jpg", edited / "chelsea_mirrored.jpg")
        assert mirrored.is_duplicate and mirrored.orientation == "mirrored"


def test_find_duplicates_groups_turned_and_framed_copies(tmp_path: Path, edited: Path) -> None:
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny")) as ex:
        report = ex.find_duplicates(directory=edited)
        groups = [{Path(p).name for p in g.paths} for g in report.groups]
        assert groups == [{"chelsea.jpg", "chelsea_turned.jpg", "chelsea_letterbox.jpg"}]
        ex.process_directory(edited)  # the same over the index, from the stored hashes
        stored = ex.find_duplicates()
        assert [{Path(p).name for p in g.paths} for g in stored.groups] == groups
        record = ex.get_by_path(edited / "chelsea_turned.jpg")
        assert record is not None and len(record.orient_hashes) == 256


# -- the record field in the stores ----------------------------------------------------------------


def test_faiss_files_without_orientation_hashes_are_migrated(tmp_path: Path) -> None:
    store = FaissStore(tmp_path / "db")
    store.configure(SPACES)
    item = make_item(1)
    store.upsert([item])
    store.close()
    conn = sqlite3.connect(tmp_path / "db" / "image_contexts.sqlite3")
    conn.execute("ALTER TABLE records DROP COLUMN orient_hashes")  # a file written before the field
    conn.commit()
    conn.close()
    store = FaissStore(tmp_path / "db")
    try:
        old = store.get(item.record.id)
        assert old == replace(item.record, orient_hashes="")
        store.upsert([item])
        assert store.get(item.record.id) == item.record
    finally:
        store.close()


def test_settings_document_the_mirror_setting() -> None:
    assert Settings.model_fields["duplicate_mirrors"].default is False


def test_perceptual_hashes_are_imagehash_s_own() -> None:
    """The record's pHash and dHash are computed without imagehash's string building, bit for
    bit what ``imagehash.phash``/``dhash`` give (stores compare them with older records)."""
    import imagehash

    from imgctx._images import perceptual_hashes

    rng = np.random.default_rng(0)
    images = [_sample(n) for n in ("chelsea", "camera", "clock_motion")]
    images += [im.convert(mode).resize(size) for im in images[:1] for mode in ("L", "RGBA")
               for size in ((7, 5), (31, 200), (333, 121))]
    images += [Image.fromarray(rng.integers(0, 256, (40 + 13 * k, 90 - 7 * k, 3), dtype=np.uint8)) for k in range(6)]
    for im in images:
        assert perceptual_hashes(im) == (str(imagehash.phash(im)), str(imagehash.dhash(im)))
