"""The hard near-duplicate set of ``benchmarks/duplicates.py`` (part 3): the copies that phones,
messengers and social sites make, and overlapping views of one scene that are not copies.

Each original gets eight edits: ``crop`` (80% of each side at a random place), ``crop_small``
(that crop shrunk to half and saved at JPEG quality 20; the originals are 140-660 pixels wide), ``rotate`` (a quarter turn either
way), ``letterbox`` (bars of a random uniform colour to a 16:9 or 9:16 frame, at least a tenth of
the side), ``jpeg15`` (quality 15), ``thumb`` (a fifth of each side), ``gray`` (grayscale) and
``watermark`` (large half-transparent text across the middle). Negatives: the left and right parts
of wide photos used nowhere else, each part 56% of the width, so they overlap by 12% of the width
(21% of a part).

Two sets from disjoint photos: ``dev`` (51 originals: scikit-image's retina, hubble, astronaut
and motorcycle_left cut 3x3, and 15 whole photos; negatives from coffee and rocket), on which the
constants and the threshold were chosen, and ``heldout`` (22 originals: matplotlib's
grace_hopper cut 2x2, scikit-learn's china and flower cut 3x3; negatives from chelsea and
motorcycle_right), kept back to check them. ``fresh`` and ``fresh_small`` (see ``FRESH``): other
photos again, to diagnose misses without looking at the held-out ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import dupset
from PIL import Image, ImageDraw, ImageFont

EDITS = ("crop", "crop_small", "rotate", "letterbox", "jpeg15", "thumb", "gray", "watermark")
SETS = {
    "dev": {
        "tiled": (("retina", 3, 3), ("hubble_deep_field", 3, 3), ("astronaut", 3, 3), ("motorcycle_left", 3, 3)),
        "whole": ("camera", "coins", "ihc", "cell", "brick", "grass", "gravel", "moon", "color", "clock_motion",
                  "page", "text", "logo", "phantom", "horse"),
        "wide": ("coffee", "rocket"),
    },
    "heldout": {
        "tiled": (("mpl:grace_hopper", 2, 2), ("sklearn:china", 3, 3), ("sklearn:flower", 3, 3)),
        "whole": (),
        "wide": ("chelsea", "motorcycle_right"),
    },
}
PART = 0.56  # width of each part of a wide photo: parts overlap by 2 * PART - 1 of the width
#: Two diagnosis sets from photos used by neither set above: the Debian wallpaper photos of
#: ``benchmarks/retrieval.py`` (its cache must hold them), shuffled with a fixed seed. ``fresh``:
#: 29 whole photos reduced to a random long side of 300-660 pixels, 4 cut 2x2 at 1,200 pixels,
#: pywt's ascent and scipy's raccoon cut 2x2; negatives from 4 more at 800 pixels. ``fresh_small``
#: (tiles as small as the held-out set's): 6 cut 3x3 at 640 pixels; negatives from 2 more.
FRESH = {"fresh": (17, 4, 4, 1200, 2), "fresh_small": (23, 6, 2, 640, 3)}  # seed, tiled, wide, side, cut


def _source(name: str) -> Image.Image:
    if name.startswith("mpl:"):
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / f"{name[4:]}.jpg"
        with Image.open(path) as img:
            return img.convert("RGB")
    return dupset._source(name)


def _resized(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    f = side / max(w, h)
    return img.resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS)


def _fresh(which: str) -> tuple[list[tuple[str, Image.Image]], list[tuple[str, Image.Image]]]:
    """(originals, wide photos) of a fresh set (see ``FRESH``)."""
    import retrieval

    seed, n_tiled, n_wide, side, cut = FRESH[which]
    photos = retrieval.load_photos(retrieval.default_cache())
    rng = random.Random(seed)
    order = [n for n, p in retrieval.PHOTOS.items() if p.kind == "deb"]
    rng.shuffle(order)
    tiled, wide = order[:n_tiled], order[n_tiled:n_tiled + n_wide]
    out = []
    if which == "fresh":
        out += [(n, _resized(photos[n], rng.randint(300, 660))) for n in order[n_tiled + n_wide:]]
    for n in tiled:
        out += dupset.tiles(n, _resized(photos[n], side), cut, cut)
    if which == "fresh":
        out += dupset.tiles("stairs", photos["stairs"], 2, 2) + dupset.tiles("raccoon", photos["raccoon"], 2, 2)
    return out, [(n, _resized(photos[n], 800 if which == "fresh" else 640)) for n in wide]


def originals(which: str) -> list[tuple[str, Image.Image]]:
    if which in FRESH:
        return _fresh(which)[0]
    spec = SETS[which]
    out = [(n, _source(n)) for n in spec["whole"]]
    for name, rows, cols in spec["tiled"]:
        out += dupset.tiles(name, _source(name), rows, cols)
    return out


def wide_parts(which: str) -> list[tuple[str, Image.Image]]:
    out = []
    wide = _fresh(which)[1] if which in FRESH else [(n, _source(n)) for n in SETS[which]["wide"]]
    for name, img in wide:
        w, h = img.size
        p = round(w * PART)
        out += [(f"{name}_left", img.crop((0, 0, p, h))), (f"{name}_right", img.crop((w - p, 0, w, h)))]
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def edit(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, dict[str, int]]:
    """One edited copy and its JPEG options."""
    w, h = img.size
    if kind in ("crop", "crop_small"):
        cw, ch = round(w * 0.8), round(h * 0.8)
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        out = img.crop((left, top, left + cw, top + ch))
        if kind == "crop":
            return out, {"quality": 90}
        return out.resize((max(16, cw // 2), max(16, ch // 2)), Image.Resampling.LANCZOS), {"quality": 20}
    if kind == "rotate":
        return img.transpose(rng.choice((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270))), {"quality": 90}
    if kind == "letterbox":
        tw, th = (max(w, round(h * 16 / 9)), h) if w < h * 16 / 9 * 0.8 else (w, max(h, round(w * 16 / 9)))
        tw, th = max(tw, round(w * 1.25)) if tw > w else tw, max(th, round(h * 1.25)) if th > h else th
        colour = rng.choice(((0, 0, 0), (255, 255, 255), (24, 24, 24), (238, 236, 230)))
        out = Image.new("RGB", (tw, th), colour)
        out.paste(img, ((tw - w) // 2, (th - h) // 2))
        return out, {"quality": 90}
    if kind == "jpeg15":
        return img, {"quality": 15}
    if kind == "thumb":
        return img.resize((max(16, w // 5), max(16, h // 5)), Image.Resampling.LANCZOS), {"quality": 85}
    if kind == "gray":
        return img.convert("L").convert("RGB"), {"quality": 90}
    if kind == "watermark":
        layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        size = max(12, w // 5)
        text = "© SAMPLE"
        box = draw.textbbox((0, 0), text, font=_font(size), stroke_width=2)
        x, y = (w - (box[2] - box[0])) // 2, (h - (box[3] - box[1])) // 2
        draw.text((x, y), text, font=_font(size), fill=(255, 255, 255, 140), stroke_width=2,
                  stroke_fill=(0, 0, 0, 140))
        return Image.alpha_composite(img.convert("RGBA"), layer).convert("RGB"), {"quality": 90}
    raise ValueError(kind)


@dataclass(frozen=True)
class HardSet:
    files: list[Path]
    cluster: dict[str, int]  # file name -> cluster id; each negative part its own
    kind: dict[str, str]  # file name -> "original", an edit, or "negative"


def build(folder: Path, which: str = "dev", seed: int = 0) -> HardSet:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    cluster: dict[str, int] = {}
    kind: dict[str, str] = {}

    def save(img: Image.Image, name: str, cid: int, k: str, **opts: int) -> None:
        p = folder / f"{name}.jpg"
        img.save(p, "JPEG", **opts)
        files.append(p)
        cluster[p.name] = cid
        kind[p.name] = k

    for cid, (name, img) in enumerate(originals(which)):
        save(img, name, cid, "original", quality=90)
        for k in EDITS:
            out, opts = edit(img, k, rng)
            save(out, f"{name}__{k}", cid, k, **opts)
    base = len(set(cluster.values()))
    for i, (name, img) in enumerate(wide_parts(which)):
        save(img, f"neg_{name}", base + i, "negative", quality=90)
    return HardSet(files, cluster, kind)
