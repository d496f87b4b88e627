"""What the transformers captioners (``git``, ``blip``) share: loading (torch, the hub or a
folder, the runtime), the decoding defaults per device, micro-batches, the ONNX export entry
point, and their settings and factory.

A subclass names its transformers classes (``_classes``) and its input size, builds its
exportable towers in ``_onnx_towers`` and captions one micro-batch in ``_generate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from imgctx._backends.base import LazyModel, resolve_device
from imgctx._backends.hub import HubSettings, is_folder, load_error, short, use_local_files
from imgctx._backends.onnx_runtime import OnnxTower, Towers, choose_runtime, start_onnx
from imgctx._backends.torch_common import TorchSettings, prepare_torch
from imgctx._settings import PluginSettings, Settings
from imgctx._types import Tag

#: Images per generate call on CPU. With beam search, per-image time grows with the batch
#: beyond a few images (likely the per-step reordering of the decoder's caches; not profiled).
#: BLIP base, 3 beams, 20 tokens, 1 thread: 3.1 s/image one at a time, 2.8 in fours, 4.1 in
#: eights; 8.8 in batches of 32 with 30 tokens (see docs/models.md).
CPU_MICRO_BATCH = 4
#: Decoding defaults per device: (beams, max new tokens).
CPU_DECODING = (1, 20)
CUDA_DECODING = (3, 30)


class HubCaptioner(LazyModel):
    """A captioning model from the hub or a folder, run in torch or ONNX Runtime."""

    #: The short side its image processor expects; images are decoded to at least this.
    input_size = 224
    #: The plugin name, the prefix of ``name`` and of its ONNX exports.
    kind = "captioner"

    def __init__(
        self, model: str, device: str = "cpu", local_files_only: bool = False,
        max_length: int | None = None, num_beams: int | None = None, torch_threads: int | None = None,
        micro_batch: int | None = None, runtime: str = "auto", cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(device)
        self.source = str(model)
        self.name = f"{self.kind}:{short(self.source)}"
        self.local_files_only = local_files_only or is_folder(self.source)
        self.max_length = max_length
        self.num_beams = num_beams
        self.torch_threads = torch_threads
        self.micro_batch = micro_batch
        self.runtime_setting = runtime
        self.cache_dir = cache_dir
        #: ``torch`` or ``onnx`` (the vision encoder and the greedy decoder) once loaded.
        self.runtime = "torch"
        self._onnx: dict[str, OnnxTower] | None = None
        self._towers: Towers | None = None
        self._model: Any = None
        self._processor: Any = None
        self._torch: Any = None
        self._dtype: Any = None

    #: What the model is and the setting that takes a local folder of it (for load errors).
    what = "the captioning model"
    local_setting = ""

    def _classes(self) -> tuple[Any, Any]:  # pragma: no cover - every captioner overrides it
        """The transformers processor and model classes (imported here: the standard extra)."""
        raise NotImplementedError

    def _model_input_size(self, processor: Any, model: Any) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _load(self) -> None:
        processor_class, model_class = self._classes()
        torch, device, dtype = prepare_torch(self.device_setting, self.torch_threads)
        try:
            local = use_local_files(self.local_files_only)
            processor = processor_class.from_pretrained(self.source, local_files_only=local)
            model = model_class.from_pretrained(self.source, local_files_only=local)
        except Exception as exc:  # transformers raises OSError, ValueError, hub errors...
            raise load_error(self.what, self.source, self.local_setting, exc, self.local_files_only) from None
        self._model = model.eval().to(device=device, dtype=dtype)
        self._processor = processor
        self._torch, self._dtype = torch, dtype
        self.input_size = self._model_input_size(processor, model)
        if choose_runtime(self.runtime_setting, device, True, self.name) == "onnx":
            towers = self._onnx_towers()
            self._onnx = start_onnx(self.runtime_setting, device, towers)
            self._towers, self.runtime = (towers, "torch") if self._onnx is None else (None, "onnx")

    def _onnx_towers(self) -> Towers:  # pragma: no cover - every captioner overrides it
        raise NotImplementedError

    def _generate(self, images: Sequence[Any]) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def export_onnx(self) -> dict[str, Path]:
        """Export the towers into the model cache now (where not yet done); their paths."""
        self.load()
        if self._onnx is not None:
            return {name: tower.path for name, tower in self._onnx.items()}
        self._towers = self._towers or self._onnx_towers()
        return self._towers.export()

    def decoding(self) -> tuple[int, int]:
        """(beams, max new tokens): the settings, or the device's defaults."""
        beams, length = CPU_DECODING if resolve_device(self.device_setting) == "cpu" else CUDA_DECODING
        return self.num_beams or beams, self.max_length or length

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

    def _texts(self, tokens: Any) -> list[str]:
        """Token ids to captions, special tokens dropped and white space collapsed."""
        return [" ".join(t.split()) for t in self._processor.batch_decode(tokens, skip_special_tokens=True)]


class CaptionerSettings(PluginSettings):
    """The settings every transformers captioner has besides its model (``IMGCTX_<NAME>_*``)."""

    model: str
    local_model_path: Path | None = None
    max_length: int | None = Field(
        None, ge=1, le=512, description="At most this many tokens per generated caption (none: 20 on CPU, 30 on CUDA).",
    )
    num_beams: int | None = Field(
        None, ge=1, le=16, description="Beam-search width of caption generation (1: greedy; none: 1 on CPU, 3 on CUDA).",
    )
    batch_size: int | None = Field(
        None, ge=1, le=1024, description="Images per generate call (none: 4 on CPU, the whole model batch on CUDA).",
    )
    runtime: Literal["torch", "onnx", "auto"] = Field(
        "auto",
        description="Runtime of the image encoder and the greedy text decoder: torch; onnx (exported into "
                    "cache_dir on first use); auto: ONNX on CPU once exported (imgctx models export), torch "
                    "otherwise. Beam search decodes in torch.",
    )

    def source(self) -> str:
        return str(self.local_model_path) if self.local_model_path else self.model


def captioner_factory(captioner: type[HubCaptioner], own_settings: type[CaptionerSettings]) -> Callable[[Settings], Any]:
    """The plugin factory of a captioner: its own settings, the hub's and torch's."""

    def factory(settings: Settings) -> HubCaptioner:
        own = settings.plugin(own_settings)
        return captioner(
            model=own.source(), device=settings.device,
            local_files_only=settings.plugin(HubSettings).local_files_only, max_length=own.max_length,
            num_beams=own.num_beams, torch_threads=settings.plugin(TorchSettings).threads,
            micro_batch=own.batch_size, runtime=own.runtime, cache_dir=settings.cache_dir,
        )

    return factory
