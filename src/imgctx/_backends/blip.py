"""``blip``: image captions from a transformers BLIP captioning model.

``Salesforce/blip-image-captioning-base`` by default; ``-large`` or any BLIP captioning model id
or folder via ``IMGCTX_BLIP_MODEL`` / ``IMGCTX_BLIP_LOCAL_MODEL_PATH``. Captions are generated in micro-batches
(``IMGCTX_BLIP_BATCH_SIZE``; 4 images per call on CPU by default, the whole batch on CUDA) with beam
search (``IMGCTX_BLIP_NUM_BEAMS``; at most ``IMGCTX_BLIP_MAX_LENGTH`` new tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from imgctx._backends.base import LazyModel
from imgctx._backends.hub import HubSettings, is_folder, load_error, short, use_local_files
from imgctx._backends.torch_common import TorchSettings, prepare_torch
from imgctx._errors import MissingDependencyError
from imgctx._hookspecs import hookimpl
from imgctx._settings import PluginSettings, Settings, contract_name, plugin_config
from imgctx._types import Tag

DEFAULT_BLIP_MODEL = "Salesforce/blip-image-captioning-base"
#: Images per generate call on CPU. With beam search, per-image time grows with the batch
#: beyond a few images (likely the per-step reordering of the decoder's caches; not profiled).
#: BLIP base, 3 beams, 20 tokens, 1 thread: 3.1 s/image one at a time, 2.8 in fours, 4.1 in
#: eights; 8.8 in batches of 32 with 30 tokens (see docs/models.md).
CPU_MICRO_BATCH = 4


class BlipCaptioner(LazyModel):
    """Captions with ``BlipForConditionalGeneration.generate``, batch by batch."""

    #: BLIP's image processor resizes to 384x384; images are decoded to at least this short side.
    input_size = 384

    def __init__(
        self, model: str = DEFAULT_BLIP_MODEL, device: str = "cpu", local_files_only: bool = False,
        max_length: int = 30, num_beams: int = 3, torch_threads: int | None = None,
        micro_batch: int | None = None,
    ) -> None:
        super().__init__(device)
        self.source = str(model)
        self.name = f"blip:{short(self.source)}"
        self.local_files_only = local_files_only or is_folder(self.source)
        self.max_length = max_length
        self.num_beams = num_beams
        self.torch_threads = torch_threads
        self.micro_batch = micro_batch
        self._model: Any = None
        self._processor: Any = None
        self._torch: Any = None
        self._dtype: Any = None

    def _load(self) -> None:
        try:
            from transformers import BlipForConditionalGeneration, BlipProcessor
        except ImportError:
            raise MissingDependencyError("the blip captioner", "standard") from None
        torch, device, dtype = prepare_torch(self.device_setting, self.torch_threads)
        try:
            local = use_local_files(self.local_files_only)
            processor = BlipProcessor.from_pretrained(self.source, local_files_only=local)
            model = BlipForConditionalGeneration.from_pretrained(self.source, local_files_only=local)
        except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
            raise load_error("the BLIP captioning model", self.source, "IMGCTX_LOCAL_BLIP_MODEL_PATH",
                             exc, self.local_files_only) from None
        self._model = model.eval().to(device=device, dtype=dtype)
        self._processor = processor
        self._torch, self._dtype = torch, dtype
        size = getattr(processor.image_processor, "size", None) or {}
        self.input_size = int(size.get("height", self.input_size)) if isinstance(size, dict) else self.input_size

    def caption(self, images: Sequence[Any], tags: Sequence[Sequence[Tag]] | None = None) -> list[str]:
        """Captions for a batch, generated ``micro_batch`` images at a time (when None: 4 on
        CPU, the whole batch on CUDA)."""
        if not images:
            return []
        self.load()
        step = self.micro_batch or (CPU_MICRO_BATCH if self.device == "cpu" else len(images))
        out: list[str] = []
        for start in range(0, len(images), step):
            out += self._generate(images[start:start + step])
        return out

    def _generate(self, images: Sequence[Any]) -> list[str]:
        torch = self._torch
        device = next(self._model.parameters()).device
        inputs = self._processor(images=list(images), return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=device, dtype=self._dtype)
        with torch.inference_mode():
            out = self._model.generate(
                pixel_values=pixels, max_new_tokens=self.max_length, num_beams=self.num_beams,
            )
        texts = self._processor.batch_decode(out, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]


class BlipSettings(PluginSettings):
    """Settings of the ``blip`` captioner (``IMGCTX_BLIP_*``)."""

    model_config = plugin_config("blip")

    model: str = Field(
        "Salesforce/blip-image-captioning-base",
        description="BLIP captioning model: a hub id or a folder (local_model_path wins).",
    )
    local_model_path: Path | None = Field(
        None, validation_alias=contract_name("BLIP_LOCAL_MODEL_PATH", "IMGCTX_LOCAL_BLIP_MODEL_PATH",
                                             "LOCAL_BLIP_MODEL_PATH"),
        description="Folder of a BLIP captioning model (also LOCAL_BLIP_MODEL_PATH).",
    )
    max_length: int = Field(30, ge=1, le=512, description="At most this many tokens per generated caption.")
    num_beams: int = Field(3, ge=1, le=16, description="Beam-search width of caption generation (1: greedy).")
    batch_size: int | None = Field(
        None, ge=1, le=1024, description="Images per BLIP generate call (none: the whole model batch).",
    )

    def source(self) -> str:
        return str(self.local_model_path) if self.local_model_path else self.model


def blip_factory(settings: Settings) -> BlipCaptioner:
    own = settings.plugin(BlipSettings)
    return BlipCaptioner(
        model=own.source(), device=settings.device,
        local_files_only=settings.plugin(HubSettings).local_files_only, max_length=own.max_length,
        num_beams=own.num_beams, torch_threads=settings.plugin(TorchSettings).threads,
        micro_batch=own.batch_size,
    )


@hookimpl
def register_captioners(register: Any) -> None:
    register("blip", blip_factory, settings=(BlipSettings, HubSettings, TorchSettings))
