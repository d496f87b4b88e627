"""ONNX Runtime for the standard preset's towers: exported once into the model cache, reused.

- ``runtime`` (``IMGCTX_CLIP_RUNTIME``, ``IMGCTX_BLIP_RUNTIME``): ``torch``; ``onnx`` (export on
  first use when no export exists yet, with a log line saying so); ``auto`` (the default): ONNX
  on CPU when the weights have been exported (``imgctx models export``), torch otherwise, so a
  user who never exports sees no change and never waits for an export.
- An export is ``<cache_dir>/onnx/<tower>-<key>.onnx``. The key is a SHA-256 of the tower's
  weights (every tensor's name, shape, dtype and bytes) and of this module's export format, so
  other weights under the same model name never reuse a stale graph. It is written under a
  temporary name and renamed: a killed export leaves no half-written file behind.
- Exports use ``torch.onnx.export(dynamo=True)``, the torch.export-based exporter (the default
  since torch 2.9; the TorchScript one is deprecated), with a dynamic batch axis. It needs the
  ``onnx`` and ``onnxscript`` packages (the ``standard`` extra); running needs ``onnxruntime``.
- ``int8``: dynamic int8 quantisation (``onnxruntime.quantization.quantize_dynamic``, weights
  of MatMul/Gemm, 7-bit range so that CPUs without VNNI do not saturate) of an exported graph, kept beside it; off by default (see docs/models.md for
  its measured fidelity).
- Nothing here runs at import time: torch, onnx and onnxruntime are imported on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from imgctx._errors import ConfigurationError, MissingDependencyError

log = logging.getLogger(__name__)

Runtime = Literal["torch", "onnx", "auto"]
#: Bumped when the exported graphs change shape or meaning, so old exports are not reused.
EXPORT_FORMAT = "imgctx-onnx-1"


def weights_key(module: Any, tower: str) -> str:
    """24 hex digits of SHA-256 over the tower name, the export format and every tensor of the
    module's state dict (name, shape, dtype, bytes)."""
    import torch

    h = hashlib.sha256(f"{EXPORT_FORMAT}\n{tower}\n".encode())
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\n".encode())
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


def export_path(cache_dir: str | os.PathLike[str] | None, tower: str, key: str, int8: bool = False) -> Path | None:
    """Where the export of ``tower`` with weights ``key`` lives (None without a cache folder)."""
    if cache_dir is None:
        return None
    # "-int8-7bit": quantised with reduce_range (7-bit weights); plain "-int8" files were 8-bit
    return Path(cache_dir).expanduser() / "onnx" / f"{tower}-{key}{'-int8-7bit' if int8 else ''}.onnx"


def choose_runtime(setting: str, device: str, exported: bool, what: str) -> str:
    """``torch`` or ``onnx`` for a model on ``device`` (a resolved torch device). ONNX runs on
    CPU only here: on CUDA, torch runs the model in half precision."""
    if setting not in ("torch", "onnx", "auto"):
        raise ConfigurationError(f"unknown runtime {setting!r} for {what}; known: torch, onnx, auto")
    if setting == "auto":
        return "onnx" if device == "cpu" and exported else "torch"
    if setting == "onnx" and device != "cpu":
        raise ConfigurationError(f"runtime 'onnx' runs {what} on CPU only; on {device} use runtime 'torch' or 'auto'")
    return setting


def _require_exporter() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise MissingDependencyError("exporting models to ONNX (onnx, onnxscript)", "standard") from None


def export(module: Any, example: Sequence[Any], path: Path, input_names: Sequence[str],
           output_name: str | Sequence[str], what: str, dynamic: Sequence[dict[int, str]] | None = None) -> Path:
    """Export ``module(*example)`` to ``path``. ``dynamic``: per input, its dynamic axes (axis ->
    dimension name; a name shared by several inputs is one dimension); by default the batch
    axis (0) of every input."""
    import torch

    _require_exporter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    log.warning("exporting %s to ONNX (once; reused from %s)...", what, path)
    start = time.perf_counter()
    dims: dict[str, Any] = {}
    shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name, min=1, max=4096)) for axis, name in axes.items()}
                   for axes in (dynamic if dynamic is not None else [{0: "batch"}] * len(example)))
    outputs = [output_name] if isinstance(output_name, str) else list(output_name)
    printed = io.StringIO()  # the exporter prints its steps: keep stdout clean (--json)
    try:
        with torch.no_grad(), contextlib.redirect_stdout(printed):
            torch.onnx.export(module.eval(), tuple(example), str(tmp), input_names=list(input_names),
                              output_names=outputs, dynamic_shapes=shapes, dynamo=True,
                              external_data=False, verbose=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        log.debug("torch.onnx.export: %s", printed.getvalue())
    log.warning("exported %s in %.1fs", what, time.perf_counter() - start)
    return path


def quantize_int8(src: Path, dst: Path) -> Path:
    """Dynamic int8 quantisation of ``src`` (MatMul/Gemm weights) into ``dst``, with weights
    kept to 7 bits (``reduce_range``): x86 CPUs without VNNI (AVX2, most laptops) multiply u8 by
    s8 in 16-bit sums that saturate with full 8-bit weights (lowest cosine 0.984 against the
    float vectors for ViT-B-32 on an AVX2 machine, 0.9998 with 7 bits)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise MissingDependencyError("int8 quantisation (onnxruntime)", "standard") from None
    tmp = dst.with_name(f".{dst.stem}.{os.getpid()}.tmp.onnx")
    try:
        quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                         reduce_range=True)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


class OnnxTower:
    """One exported tower in an ``onnxruntime.InferenceSession``: arrays in, float32 array out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("the ONNX runtime (onnxruntime)", "standard") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        feed = dict(zip(self.inputs, arrays, strict=True))
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)

    def run(self, *arrays: np.ndarray) -> list[np.ndarray]:
        """Every output of the graph, as ONNX Runtime returns them."""
        return self.session.run(None, dict(zip(self.inputs, arrays, strict=True)))


def ensure_export(module: Any, example: Sequence[Any] | Callable[[], Sequence[Any]], tower: str, key: str, cache_dir: str | os.PathLike[str] | None,
                  input_names: Sequence[str], output_name: str | Sequence[str], what: str, int8: bool = False,
                  dynamic: Sequence[dict[int, str]] | None = None) -> Path:
    """The export of ``tower`` (int8 when asked), exporting it now if the cache has none."""
    path = export_path(cache_dir, tower, key)
    if path is None:
        raise ConfigurationError(f"the ONNX runtime for {what} needs a model cache folder (IMGCTX_CACHE_DIR)")
    if not path.is_file():
        example = example() if callable(example) else example  # made only when exporting
        export(module, example, path, input_names, output_name, what, dynamic)
    if not int8:
        return path
    q = export_path(cache_dir, tower, key, int8=True)
    assert q is not None
    if not q.is_file():
        quantize_int8(path, q)
    return q


def method_module(owner: Any, method: str, pick: Any = None) -> Any:
    """A torch module whose ``forward(x)`` is ``owner.<method>(x)`` (``encode_image``), for
    export; ``pick(output)`` when given, else of a model output (a transformers
    ``BaseModelOutput``) its first tensor."""
    import torch

    class Method(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.owner = owner

        def forward(self, x: Any) -> Any:
            out = getattr(self.owner, method)(x)
            if pick is not None:
                return pick(out)
            return out if isinstance(out, torch.Tensor) else out[0]

    return Method()


class TowerSpec:
    """A tower to export: a module, example inputs (or a function making them, called only when
    exporting) and the input names."""

    def __init__(self, module: Any, example: Sequence[Any] | Callable[[], Sequence[Any]], input_names: Sequence[str], int8: bool = False,
                 output_names: Sequence[str] = ("output",), dynamic: Sequence[dict[int, str]] | None = None) -> None:
        self.module, self.example, self.input_names, self.int8 = module, example, input_names, int8
        self.output_names = list(output_names)
        #: per input, its dynamic axes (axis -> dimension name); None: axis 0 of each ("batch")
        self.dynamic = dynamic


class Towers:
    """The ONNX side of one model: its towers' exports in the cache, keyed by ``weights``."""

    def __init__(self, prefix: str, what: str, weights: Any, towers: dict[str, TowerSpec],
                 cache_dir: str | os.PathLike[str] | None, threads: int | None = None) -> None:
        self.prefix, self.what, self.towers, self.cache_dir, self.threads = prefix, what, towers, cache_dir, threads
        self.key = weights_key(weights, prefix)

    def exported(self) -> bool:
        paths = [export_path(self.cache_dir, f"{self.prefix}-{name}", self.key) for name in self.towers]
        return all(p is not None and p.is_file() for p in paths)

    def export(self) -> dict[str, Path]:
        """Every tower's export (int8 ones quantised), made now where missing."""
        return {name: ensure_export(spec.module, spec.example, f"{self.prefix}-{name}", self.key, self.cache_dir,
                                    spec.input_names, spec.output_names, f"{self.what} ({name} tower)",
                                    int8=spec.int8, dynamic=spec.dynamic)
                for name, spec in self.towers.items()}

    def sessions(self) -> dict[str, OnnxTower]:
        return {name: OnnxTower(path, self.threads) for name, path in self.export().items()}


def start_onnx(setting: str, device: str, towers: Towers) -> dict[str, OnnxTower] | None:
    """The ONNX sessions when ``setting`` resolves to ONNX (exporting now for ``onnx`` when
    the cache has no export yet), None when torch runs the model."""
    choose_runtime(setting, device, False, towers.what)  # validates the setting and device
    if setting == "torch" or device != "cpu":
        return None
    if choose_runtime(setting, device, towers.exported(), towers.what) == "torch":
        return None
    return towers.sessions()


def greedy_tokens(logits: np.ndarray, step: Callable[[np.ndarray, int], np.ndarray], bos: int, eos: int,
                  pad: int, min_length: int, max_new_tokens: int) -> np.ndarray:
    """Greedy decoding as transformers' ``generate(num_beams=1)`` does it, for a decoder exported
    with explicit caches: ``logits`` [B, V] are the BOS step's; ``step(tokens [B], position)``
    runs the next position and returns its logits. Returns token ids [B, 1 + generated], BOS first,
    rows that ended padded with ``pad``; no end before ``min_length`` tokens (as
    ``MinLengthLogitsProcessor``)."""
    n = logits.shape[0]
    out = [np.full(n, bos, dtype=np.int64)]
    done = np.zeros(n, dtype=bool)
    for index in range(max_new_tokens):
        if len(out) < min_length:
            logits[:, eos] = -np.inf
        token = np.where(done, pad, np.argmax(logits, axis=-1)).astype(np.int64)
        out.append(token)
        done |= token == eos
        if done.all() or index == max_new_tokens - 1:
            break
        logits = step(token, len(out) - 1)
    return np.stack(out, axis=1)


#: Generation settings the greedy loop leaves neutral: any other value decodes in torch.
NEUTRAL_GENERATION = {
    "do_sample": (None, False), "repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,), "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,), "suppress_tokens": (None,), "begin_suppress_tokens": (None,),
    "sequence_bias": (None,), "min_new_tokens": (None, 0), "exponential_decay_length_penalty": (None,),
    "diversity_penalty": (None, 0.0), "renormalize_logits": (None, False),
}


def greedy_supported(generation_config: Any) -> bool:
    """Whether a model's generation settings are ones :func:`greedy_tokens` does (no sampling,
    no repetition penalty, no banned or forced tokens)."""
    return all(getattr(generation_config, name, None) in allowed for name, allowed in NEUTRAL_GENERATION.items())
