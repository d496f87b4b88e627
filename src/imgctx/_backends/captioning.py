"""What the transformers captioners (``git``, ``blip``) share: their settings as arguments, the
decoding defaults per device, micro-batches, and the ONNX export entry point.

A subclass loads its model and processor in ``_load`` (setting ``_model``, ``_processor``,
``_torch``, ``_dtype``, and ``_onnx`` / ``_towers`` when ONNX Runtime runs it), builds its
exportable towers in ``_onnx_towers`` and captions one micro-batch in ``_generate``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgctx._backends.base import LazyModel, resolve_device
from imgctx._backends.hub import is_folder, short
from imgctx._backends.onnx_runtime import OnnxTower, Towers
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
