"""The near-duplicate set used by ``benchmarks/duplicates.py`` (kept apart so tests and
calibration scripts can build it too)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

#: Whole photos used as originals (scikit-image file names).
WHOLE = ("camera", "cell", "chelsea", "coins", "ihc", "moon", "page", "text", "color", "logo",
         "clock_motion", "brick", "grass", "gravel", "motorcycle_left")
#: Large photos cut into non-overlapping tiles, each tile a distinct original: (name, rows, cols).
TILED = (("retina", 3, 3), ("hubble_deep_field", 3, 3), ("astronaut", 2, 2), ("rocket", 2, 2),
         ("coffee", 2, 2), ("sklearn:china", 2, 2), ("sklearn:flower", 2, 2))
#: Distinct photos with no copies: a different-but-similar scene (the other motorcycle camera),
#: a silhouette, a small retina scan, and faces of different people framed the same way.
NEGATIVES = ("motorcycle_right", "horse", "microaneurysms")
FACES = 10
VARIANTS = ("resize", "jpeg", "crop", "brightness", "rotate", "format", "text")


def _source(name: str) -> Image.Image:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image(name.split(":", 1)[1] + ".jpg"))
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    for suffix in (".png", ".jpg"):
        if (folder / f"{name}{suffix}").exists():
            with Image.open(folder / f"{name}{suffix}") as img:
                img.load()
                if img.mode in ("RGBA", "LA", "P"):
                    rgba = img.convert("RGBA")
                    bg = Image.new("RGB", rgba.size, (255, 255, 255))
                    bg.paste(rgba, mask=rgba.getchannel("A"))
                    return bg
                return img.convert("RGB")
    raise FileNotFoundError(name)


def tiles(name: str, img: Image.Image, rows: int, cols: int) -> list[tuple[str, Image.Image]]:
    """``rows`` x ``cols`` non-overlapping tiles of a photo, named ``<name>_t<row><col>``."""
    w, h = img.size
    return [(f"{name.split(':')[-1]}_t{r}{c}",
             img.crop((c * w // cols, r * h // rows, (c + 1) * w // cols, (r + 1) * h // rows)))
            for r in range(rows) for c in range(cols)]


def originals() -> list[tuple[str, Image.Image]]:
    """The distinct originals: whole photos plus non-overlapping tiles of large ones."""
    out = [(n, _source(n)) for n in WHOLE]
    for name, rows, cols in TILED:
        out += tiles(name, _source(name), rows, cols)
    return out


def negatives() -> list[tuple[str, Image.Image]]:
    out = [(n, _source(n)) for n in NEGATIVES]
    import skimage.data

    faces = np.load(Path(skimage.data.__file__).parent / "lfw_subset.npy")
    for i in range(FACES):
        face = (faces[i * 10] * 255).astype(np.uint8) if faces.dtype != np.uint8 else faces[i * 10]
        out.append((f"face{i}", Image.fromarray(face).convert("RGB").resize((200, 200), Image.Resampling.BICUBIC)))
    return out


def variant(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, str, dict[str, int]]:
    """One edited copy: (image, file format, save options)."""
    w, h = img.size
    if kind == "resize":
        f = rng.uniform(0.4, 0.7)
        return img.resize((max(32, round(w * f)), max(32, round(h * f))), Image.Resampling.LANCZOS), "JPEG", {"quality": 90}
    if kind == "jpeg":
        return img, "JPEG", {"quality": rng.randint(30, 70)}
    if kind == "crop":
        fx, fy = rng.uniform(0.03, 0.10), rng.uniform(0.03, 0.10)
        left, top = round(w * fx * rng.random()), round(h * fy * rng.random())
        return img.crop((left, top, left + round(w * (1 - fx)), top + round(h * (1 - fy)))), "JPEG", {"quality": 90}
    if kind == "brightness":
        f = rng.choice((-1, 1)) * rng.uniform(0.1, 0.2) + 1
        return ImageEnhance.Brightness(img).enhance(f), "JPEG", {"quality": 90}
    if kind == "rotate":
        angle = rng.choice((-1, 1)) * rng.uniform(2, 5)
        return img.rotate(angle, Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0)), "JPEG", {"quality": 90}
    if kind == "format":
        return img, rng.choice(("PNG", "WEBP")), {}
    if kind == "text":
        out = img.copy()
        draw = ImageDraw.Draw(out)
        size = max(10, h // 12)
        try:
            from PIL import ImageFont

            font = ImageFont.load_default(size)
        except TypeError:  # Pillow < 10.1
            font = ImageFont.load_default()
        draw.text((w // 20, h - size * 2), "holiday 2024 (c)", fill=(255, 255, 255), font=font,
                  stroke_width=1, stroke_fill=(0, 0, 0))
        return out, "JPEG", {"quality": 90}
    raise ValueError(kind)


SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


@dataclass(frozen=True)
class DupSet:
    files: list[Path]
    cluster: dict[str, int]  # file name -> cluster id; negatives get their own id


def build(folder: Path, seed: int = 0) -> DupSet:
    """Write originals, 7 variants each, and the negatives into ``folder``."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    cluster: dict[str, int] = {}
    for cid, (name, img) in enumerate(originals()):
        p = folder / f"{name}.jpg"
        img.save(p, "JPEG", quality=90)
        files.append(p)
        cluster[p.name] = cid
        for kind in VARIANTS:
            out, fmt, opts = variant(img, kind, rng)
            p = folder / f"{name}__{kind}{SUFFIX[fmt]}"
            out.save(p, fmt, **opts)
            files.append(p)
            cluster[p.name] = cid
    base = len(cluster)
    for i, (name, img) in enumerate(negatives()):
        p = folder / f"neg_{name}.jpg"
        img.save(p, "JPEG", quality=90)
        files.append(p)
        cluster[p.name] = base + i
    return DupSet(files, cluster)
