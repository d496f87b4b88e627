"""Sample photos and settings for tests: shared by :mod:`imgctx.testing` (which re-exports
them) and the store conformance suite."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgctx._settings import Settings

SAMPLE_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle_left", "hubble_deep_field")


def sample_photo_path(name: str) -> Path:
    """Path of a photo that ships inside scikit-image's wheel (``skimage/data``)."""
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for suffix in (".png", ".jpg"):
        if (folder / f"{name}{suffix}").exists():
            return folder / f"{name}{suffix}"
    raise FileNotFoundError(f"scikit-image ships no photo named {name!r}")


def write_sample_photos(
    folder: str | Path, names: Sequence[str] = SAMPLE_PHOTOS, fmt: str = "JPEG"
) -> list[Path]:
    """Write scikit-image's sample photos into ``folder`` as RGB files; returns the paths."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}[fmt]
    paths = []
    for name in names:
        with Image.open(sample_photo_path(name)) as src:
            img = src.convert("RGB")
        path = folder / f"{name}{suffix}"
        img.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def write_photo_crops(folder: Path, count: int, side: int = 224) -> list[Path]:
    """``count`` distinct real photos: crops of scikit-image's sample photos at several offsets
    and scales, each resized to ``side`` pixels on its long side, as JPEGs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for name in SAMPLE_PHOTOS:
        with Image.open(sample_photo_path(name)) as im:
            sources.append((name, im.convert("RGB")))
    paths: list[Path] = []
    i = 0
    while len(paths) < count:
        name, im = sources[i % len(sources)]
        k = i // len(sources)
        frac = 0.5 + 0.5 * ((k * 7) % 10) / 10  # 50%..95% of the photo
        w, h = int(im.width * frac), int(im.height * frac)
        x = (k * 37) % max(1, im.width - w)
        y = (k * 53) % max(1, im.height - h)
        crop = im.crop((x, y, x + w, y + h))
        crop.thumbnail((side, side))
        path = folder / f"{name}-{k:03d}.jpg"
        crop.save(path, "JPEG", quality=88)
        paths.append(path)
        i += 1
    return paths


#: The import name to load these test doubles as a plugin: ``Settings(load_plugins=(PLUGIN,))``
#: or ``IMGCTX_LOAD_PLUGINS=imgctx.testing``. They are never in a user's registry otherwise.
PLUGIN = "imgctx.testing"


def settings_for_tests(db_path: str | Path, **changes: Any) -> Settings:
    """Settings that ignore the environment: a given db path, the test doubles of this module
    loaded as a plugin (the ``tiny`` preset), everything else default."""
    changes["load_plugins"] = (*changes.get("load_plugins", ()), PLUGIN)
    return Settings.from_values(db_path=Path(db_path), **changes)
