"""``colors``: an annotator that names an image's few dominant colours in plain words.

Each pixel of a 64x64 thumbnail is given one of thirteen names from its hue, saturation and
value (black, white, gray, brown, red, orange, yellow, green, teal, blue, purple, pink, beige);
the names that cover at least ``min_share`` of the image are its colours, most covering first.
No weights, a few milliseconds an image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, plugin_config
from imgctx._types import Annotation

#: Hue bands (degrees, upper bound exclusive) of the saturated colours.
_HUES = ((15, "red"), (40, "orange"), (68, "yellow"), (160, "green"), (195, "teal"), (255, "blue"),
         (290, "purple"), (335, "pink"), (361, "red"))
NAMES = ("black", "white", "gray", "brown", "beige", "red", "orange", "yellow", "green", "teal", "blue",
         "purple", "pink")


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """An (n, 3) uint8 RGB array -> the index in NAMES of each pixel's colour name."""
    x = rgb.astype(np.float32) / 255.0
    mx, mn = x.max(axis=1), x.min(axis=1)
    chroma = mx - mn
    sat = np.where(mx > 0, chroma / np.maximum(mx, 1e-6), 0.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    out = np.full(len(x), NAMES.index("gray"), dtype=np.int64)
    for upper, name in reversed(_HUES):
        out = np.where(hue < upper, NAMES.index(name), out)
    warm = (hue >= 10) & (hue < 50)
    out = np.where(warm & (mx < 0.6) & (sat > 0.25), NAMES.index("brown"), out)
    out = np.where(warm & (sat <= 0.35) & (mx >= 0.7), NAMES.index("beige"), out)
    grey = (sat < 0.18) | (chroma < 0.08)
    out = np.where(grey, NAMES.index("gray"), out)
    out = np.where(grey & (mx > 0.85), NAMES.index("white"), out)
    out = np.where(mx < 0.18, NAMES.index("black"), out)
    return out


def dominant_colours(image: Any, max_colors: int = 3, min_share: float = 0.12) -> tuple[str, ...]:
    """The names covering at least ``min_share`` of ``image`` (a PIL image), most first."""
    thumb = image.convert("RGB").resize((64, 64))
    counts = np.bincount(colour_names(np.asarray(thumb).reshape(-1, 3)), minlength=len(NAMES))
    share = counts / max(1, counts.sum())
    order = np.argsort(-share, kind="stable")
    return tuple(NAMES[i] for i in order[:max_colors] if share[i] >= min_share)


class ColorSettings(PluginSettings):
    """Settings of the ``colors`` annotator (``IMGCTX_COLORS_*``)."""

    model_config = plugin_config("colors")

    max_colors: int = Field(3, ge=1, le=len(NAMES), description="At most this many colour names per image.")
    min_share: float = Field(0.12, gt=0.0, le=1.0, description="A colour must cover at least this share of the image.")


class DominantColors:
    """Colour names per image; needs no weights (``loaded`` says whether it was asked to load,
    so that an Extractor that has not started reports nothing loaded)."""

    name = "colors"
    device = "cpu"
    load_time = 0.0

    def __init__(self, max_colors: int = 3, min_share: float = 0.12) -> None:
        self.max_colors = max_colors
        self.min_share = min_share
        self.loaded = False

    def load(self) -> None:
        self.loaded = True

    def annotate(self, images: Sequence[Any], paths: Sequence[str]) -> list[Annotation]:
        return [Annotation(colors=dominant_colours(img, self.max_colors, self.min_share)) for img in images]


def colors_factory(settings: Settings) -> DominantColors:
    own = settings.plugin(ColorSettings)
    return DominantColors(own.max_colors, own.min_share)


@hookimpl
def register_annotators(register: Any) -> None:
    register("colors", colors_factory, settings=ColorSettings)
