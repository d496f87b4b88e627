"""Safe image input: formats sniffed from bytes, EXIF orientation, bombs, corrupt files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgctx._errors import ImageNotFoundError, ImageTooLargeError, InvalidImageError
from imgctx._images import load_image, scan_directory, sniff_format

LIMITS = dict(max_pixels=50_000_000, max_bytes=50 * 1024 * 1024)


def _photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("fmt", "suffix", "expected"),
    [("JPEG", ".jpg", "JPEG"), ("PNG", ".png", "PNG"), ("WEBP", ".webp", "WEBP"),
     ("GIF", ".gif", "GIF"), ("BMP", ".bmp", "BMP"), ("TIFF", ".tif", "TIFF")],
)
def test_every_supported_format_decodes_to_rgb(tmp_path: Path, fmt: str, suffix: str, expected: str) -> None:
    path = tmp_path / f"img{suffix}"
    _photo().save(path, fmt)
    img = load_image(path, **LIMITS)
    assert img.format == expected
    assert img.image.mode == "RGB"
    assert img.size == (64, 48)
    assert img.file_size == path.stat().st_size
    assert len(img.content_hash) == 64


def test_heic_with_the_extra(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    path = tmp_path / "img.heic"
    _photo().save(path, "HEIF")
    img = load_image(path, **LIMITS)
    assert img.format == "HEIF"
    assert img.size == (64, 48)


def test_format_comes_from_the_bytes_not_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "actually_png.jpg"
    _photo().save(path, "PNG")
    assert load_image(path, **LIMITS).format == "PNG"
    assert sniff_format(b"not an image at all") is None


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = _photo((80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    img.save(path, "JPEG", exif=exif.tobytes())
    decoded = load_image(path, **LIMITS)
    assert decoded.size == (40, 80)
    assert decoded.image.size == (40, 80)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_gives_the_upright_picture(tmp_path: Path, orientation: int) -> None:
    """Each of the eight EXIF orientations (mirrors too) decodes to what Pillow's exif_transpose
    shows; 1 (upright) and a picture without the tag are left as they are."""
    from PIL import ImageOps

    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"  # lossless, so pixels compare exactly
    _photo((60, 30)).save(path, exif=exif.tobytes())
    with Image.open(path) as src:
        expected = np.asarray((ImageOps.exif_transpose(src) or src).convert("RGB"))
    got = np.asarray(load_image(path, **LIMITS).image)
    assert got.shape == expected.shape and np.array_equal(got, expected)
    assert (got.shape[:2] == (60, 30)) == (orientation in (5, 6, 7, 8))


def test_large_jpeg_is_decoded_reduced_but_reports_full_size(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    _photo((3000, 2000)).save(path, "JPEG")
    decoded = load_image(path, **LIMITS)
    assert decoded.size == (3000, 2000)
    assert max(decoded.image.size) <= 512


def test_transparent_png_is_flattened_on_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(path)
    decoded = load_image(path, **LIMITS)
    assert decoded.image.getpixel((5, 5)) == (255, 255, 255)


def test_animated_gif_uses_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, g, b = load_image(path, **LIMITS).image.getpixel((10, 10))
    assert r > 200 and b < 50


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (5000, 5000)).save(path)  # 25 Mpx of zeros: a tiny file
    assert path.stat().st_size < 100_000
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        load_image(path, max_pixels=10_000_000, max_bytes=LIMITS["max_bytes"])


def test_file_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    _photo((200, 200)).save(path)
    with pytest.raises(ImageTooLargeError, match="byte limit"):
        load_image(path, max_pixels=LIMITS["max_pixels"], max_bytes=1000)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"hello, not an image", "not a supported image format"),
     (b"\xff\xd8\xff\xe0garbage garbage", "corrupt")],
)
def test_bad_files_give_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError, match=message) as info:
        load_image(path, **LIMITS)
    assert info.value.path == str(path)


def test_truncated_file_is_invalid(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _photo((300, 300)).save(buf, "PNG")
    path = tmp_path / "truncated.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InvalidImageError, match="truncated|corrupt"):
        load_image(path, **LIMITS)


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match="file not found"):
        load_image(tmp_path / "nope.jpg", **LIMITS)
    with pytest.raises(ImageNotFoundError, match="not a regular file"):
        load_image(tmp_path, **LIMITS)


def test_scan_directory_filters_and_recurses(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for p in ("a.jpg", "b.PNG", "notes.txt", "sub/c.webp", ".hidden/d.jpg", ".e.jpg"):
        (tmp_path / p).write_bytes(b"x")
    assert [p.name for p in scan_directory(tmp_path)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in scan_directory(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "c.webp"]
    with pytest.raises(ImageNotFoundError):
        scan_directory(tmp_path / "missing")
