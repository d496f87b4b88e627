"""The models an Extractor composes (:class:`Components`) and their load state and timings
(:class:`ModelManager`, ``extractor.models``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from imgctx._images import DEFAULT_DECODE_SIDE
from imgctx._types import ModelStatus, SpaceSpec


@dataclass
class Components:
    """The models an Extractor uses, resolved from names, instances and the preset."""

    captioner: Any = None
    image_embedder: Any = None
    text_embedder: Any = None
    taggers: list[Any] = field(default_factory=list)
    annotators: list[Any] = field(default_factory=list)

    def by_role(self) -> dict[str, Any]:
        roles: dict[str, Any] = {
            "captioner": self.captioner, "image_embedder": self.image_embedder,
            "text_embedder": self.text_embedder,
        }
        for i, t in enumerate(self.taggers):
            roles["tagger" if i == 0 else f"tagger_{i}"] = t
        for i, a in enumerate(self.annotators):
            roles["annotator" if i == 0 else f"annotator_{i}"] = a
        return {k: v for k, v in roles.items() if v is not None}

    def decode_side(self) -> int:
        """The short side images are decoded to: the largest ``input_size`` a model declares."""
        sizes = [int(getattr(m, "input_size", 0) or 0) for m in self.by_role().values()]
        return max(sizes) if any(sizes) else DEFAULT_DECODE_SIDE

    def spaces(self) -> list[SpaceSpec]:
        out = []
        if self.image_embedder is not None:
            out.append(_space("image", self.image_embedder))
        if self.text_embedder is not None:
            out.append(_space("text", self.text_embedder))
        return out


def _space(name: str, embedder: Any) -> SpaceSpec:
    """A vector space as stores record it: the model's ``space_model`` (what its vectors mean,
    settings that change them included) when it has one, else its name."""
    return SpaceSpec(name, getattr(embedder, "space_model", embedder.name), int(embedder.dim))


class ModelManager:
    """Load state and timings of an Extractor's models (``extractor.models``)."""

    def __init__(self, components: Components, device: str) -> None:
        self._components = components
        self._device = device

    def status(self) -> dict[str, ModelStatus]:
        """Which models are loaded, without loading any."""
        out = {}
        for role, model in self._components.by_role().items():
            out[role] = ModelStatus(
                role=role, name=model.name, loaded=bool(model.loaded),
                load_time=getattr(model, "load_time", None),
                device=str(getattr(model, "device", self._device)),
            )
        return out

    def preload(self) -> dict[str, float]:
        """Load every model now; seconds per role (0 when already loaded) and the ``total``."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        seen: set[int] = set()
        for role, model in self._components.by_role().items():
            t0 = time.perf_counter()
            if id(model) not in seen:
                model.load()
                seen.add(id(model))
            timings[role] = round(time.perf_counter() - t0, 4)
        timings["total"] = round(time.perf_counter() - start, 4)
        return timings
