"""Helpers for testing code that uses imgctx, without downloads or real weights.

- ``tiny`` preset models: deterministic, weight-free stand-ins that run in microseconds.
  ``TinyImageEmbedder`` (colour histogram), ``TinyTextEmbedder`` (hashed words),
  ``TinyColorTagger`` (colour names). They fill the same roles as real models, so an
  ``Extractor(preset="tiny", store="memory")`` exercises the whole library.
- ``write_sample_photos(folder)``: real photos from scikit-image (if installed) as JPEG/PNG.
- ``StoreConformance``: the pytest suite every store passes; subclass it to test a store plugin
  (imported on first use, since it needs pytest).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgctx.hookspecs import hookimpl
from imgctx.settings import Settings
from imgctx.types import Tag

_WORD = re.compile(r"[a-z0-9]+")


class _Tiny:
    loaded = True
    load_time = 0.0
    device = "cpu"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def load(self) -> None:
        return None

    def _tick(self) -> None:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)


class TinyImageEmbedder(_Tiny):
    """64-d L2-normalised colour histogram (4 levels per channel); not cross-modal."""

    name = "tiny-image"
    dim = 64
    cross_modal = False

    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        self._tick()
        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for k, img in enumerate(images):
            arr = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.uint8) // 64
            codes = (arr[..., 0].astype(np.int64) * 16 + arr[..., 1] * 4 + arr[..., 2]).ravel()
            hist = np.bincount(codes, minlength=self.dim).astype(np.float32)
            out[k] = hist / max(float(np.linalg.norm(hist)), 1e-12)
        return out


class TinyTextEmbedder(_Tiny):
    """128-d L2-normalised bag of hashed words: texts sharing words are similar."""

    name = "tiny-text"
    dim = 128

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self._tick()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for k, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")
                out[k, h % self.dim] += 1.0
            norm = float(np.linalg.norm(out[k]))
            if norm:
                out[k] /= norm
        return out


class TinyColorTagger(_Tiny):
    """Tags each image with its dominant colour channel and brightness."""

    name = "tiny-colors"

    def tag(self, images: Sequence[Any]) -> list[list[Tag]]:
        self._tick()
        result = []
        for img in images:
            mean = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.float32).mean(axis=(0, 1)) / 255
            colour = ("red", "green", "blue")[int(np.argmax(mean))]
            share = float(mean.max() / max(mean.sum(), 1e-6))
            light = "bright" if mean.mean() > 0.5 else "dark"
            result.append([Tag(colour, min(1.0, share)), Tag(light, float(abs(mean.mean() - 0.5) * 2)), Tag("colour", 1.0, coarse=True)])
        return result


@hookimpl
def register_image_embedders(register: Any) -> None:
    register("tiny-image", lambda settings, **kw: TinyImageEmbedder(**kw))


@hookimpl
def register_text_embedders(register: Any) -> None:
    register("tiny-text", lambda settings, **kw: TinyTextEmbedder(**kw))


@hookimpl
def register_taggers(register: Any) -> None:
    register("tiny-colors", lambda settings, **kw: TinyColorTagger(**kw))


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


def settings_for_tests(db_path: str | Path, **changes: Any) -> Settings:
    """Settings that ignore the environment: a given db path, everything else default."""
    return Settings.from_values(db_path=Path(db_path), **changes)


def __getattr__(name: str) -> Any:
    """``StoreConformance`` and its helpers load lazily: they import pytest."""
    if name in ("StoreConformance", "make_item", "CONFORMANCE_SPACES"):
        from imgctx import _store_conformance

        return {"StoreConformance": _store_conformance.StoreConformance,
                "make_item": _store_conformance.make_item,
                "CONFORMANCE_SPACES": _store_conformance.SPACES}[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
