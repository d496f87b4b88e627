"""``git``: image captions from a transformers GIT captioning model, the standard preset's
captioner.

``microsoft/git-base-coco`` by default (GIT base fine-tuned on COCO captions), or any GIT
captioning model id or folder via ``IMGCTX_GIT_MODEL`` / ``IMGCTX_GIT_LOCAL_MODEL_PATH``.

Why GIT base: it captions COCO about as well as BLIP base and costs a fraction of it on a CPU.
Published COCO Karpathy-test CIDEr: GIT base 131.35 (microsoft/GenerativeImage2Text's README;
131.4 in the GIT paper, Wang et al. 2022, arXiv:2205.14100), BLIP base (CapFilt-L) 133.3 (Li
et al. 2022, arXiv:2201.12086). GIT's image encoder is a CLIP ViT-B/16 at 224 px (197 tokens)
where BLIP's is a ViT-B/16 at 384 px (577 tokens), and its decoder has 6 layers that attend to
the image tokens as part of one sequence where BLIP's has 12 with cross-attention. On the
2-core development machine, full-size architectures: see ``benchmarks/runtimes.py``.

Decoding, micro-batches and runtimes are as for ``blip`` (see ``captioning`` and
``onnx_runtime``): greedy with at most 20 new tokens on CPU by default, 3 beams and 30 on CUDA;
``IMGCTX_GIT_NUM_BEAMS``, ``IMGCTX_GIT_MAX_LENGTH``, ``IMGCTX_GIT_BATCH_SIZE``,
``IMGCTX_GIT_RUNTIME``. With ``onnx`` three graphs run in ONNX Runtime: ``vision`` (the image
encoder and its projection), ``decoder-start`` (the image tokens and the BOS token through the
decoder: the BOS step's logits and every layer's keys and values) and ``decoder-step`` (one
more token with those caches -> its logits and the grown caches); a numpy loop decodes greedily
as ``GitForCausalLM.generate(num_beams=1)`` does (tests check token for token). Beam search and
generation settings the loop does not implement run the whole model in torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from imgctx._backends.captioning import CaptionerSettings, HubCaptioner, captioner_factory
from imgctx._backends.hub import HubSettings
from imgctx._backends.onnx_runtime import (
    Towers,
    TowerSpec,
    greedy_supported,
    greedy_tokens,
)
from imgctx._backends.torch_common import TorchSettings
from imgctx._errors import MissingDependencyError
from imgctx._hookspecs import hookimpl
from imgctx._settings import plugin_config

DEFAULT_GIT_MODEL = "microsoft/git-base-coco"


def git_modules(model: Any) -> tuple[Any, Any, Any]:
    """GIT (``GitForCausalLM``) as three torch modules with explicit caches, for export and for
    the greedy loop (L layers, B images, H heads, D head size, S image tokens, t tokens so far):

    - ``vision(pixels [B, 3, side, side])`` -> the projected image tokens ``[B, S, E]``;
    - ``start(image_embeds [B, S, E])`` -> the BOS step's ``logits [B, V]`` and every layer's keys
      and values over the image tokens and BOS, ``[L, B, H, S + 1, D]``;
    - ``step(token [B, 1], position [1, 1], k, v [L, B, H, S + t, D])`` -> ``logits [B, V]`` and
      the caches grown by one.

    The same weights and operations as ``GitForCausalLM.forward`` in eval mode: the image tokens
    attend to each other only, each text token to every image token and the text before it (text
    positions count from 0 at BOS)."""
    import torch

    git = model.git
    emb, layers, head = git.embeddings, list(git.encoder.layer), model.output
    heads = int(model.config.num_attention_heads)
    size = int(model.config.hidden_size) // heads
    root = math.sqrt(size)
    bos = int(model.config.bos_token_id)

    def split(x: Any) -> Any:  # [B, T, H*D] -> [B, H, T, D]
        return x.view(x.shape[0], x.shape[1], heads, size).transpose(1, 2)

    def attend(q: Any, k: Any, v: Any, mask: Any) -> Any:  # -> [B, T, H*D]
        scores = torch.matmul(q, k.transpose(-1, -2)) / root
        probs = torch.softmax(scores if mask is None else scores + mask, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[0], ctx.shape[1], heads * size)

    def run(x: Any, past_k: Any, past_v: Any, mask: Any) -> tuple[Any, Any, Any]:
        ks, vs = [], []
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            k, v = split(sa.key(x)), split(sa.value(x))
            if past_k is not None:
                k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            ks.append(k)
            vs.append(v)
            x = layer.attention.output(attend(split(sa.query(x)), k, v, mask), x)
            x = layer.output(layer.intermediate(x), x)
        return head(x)[:, -1], torch.stack(ks), torch.stack(vs)

    def text(tokens: Any, position: Any) -> Any:
        return emb.LayerNorm(emb.word_embeddings(tokens) + emb.position_embeddings(position))

    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.git = git

        def forward(self, pixels: Any) -> Any:
            return git.visual_projection(git.image_encoder(pixels).last_hidden_state)

    class Start(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.git = git

        def forward(self, image_embeds: Any) -> tuple[Any, Any, Any]:
            n, s = image_embeds.shape[0], image_embeds.shape[1]
            tokens = torch.full((n, 1), bos, dtype=torch.long)
            x = torch.cat([image_embeds, text(tokens, torch.zeros((1, 1), dtype=torch.long))], dim=1)
            # image tokens do not see the text after them; the BOS token sees everything
            blocked = torch.zeros((s + 1, s + 1), dtype=torch.bool)
            blocked[:s, s] = True
            mask = torch.zeros((s + 1, s + 1), dtype=x.dtype).masked_fill(blocked, torch.finfo(x.dtype).min)
            return run(x, None, None, mask)

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.git = git

        def forward(self, token: Any, position: Any, k: Any, v: Any) -> tuple[Any, Any, Any]:
            return run(text(token, position), k, v, None)

    return Vision().eval(), Start().eval(), Step().eval()


class GitCaptioner(HubCaptioner):
    """Captions with ``GitForCausalLM.generate`` (torch) or its exported graphs (ONNX Runtime)."""

    input_size = 224
    kind = "git"

    def __init__(self, model: str = DEFAULT_GIT_MODEL, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)

    what = "the GIT captioning model"
    local_setting = "IMGCTX_GIT_LOCAL_MODEL_PATH"

    def _classes(self) -> tuple[Any, Any]:
        try:
            from transformers import AutoProcessor, GitForCausalLM
        except ImportError:
            raise MissingDependencyError("the git captioner", "standard") from None
        return AutoProcessor, GitForCausalLM

    def _model_input_size(self, processor: Any, model: Any) -> int:
        return int(model.config.vision_config.image_size)

    def _onnx_towers(self) -> Towers:
        torch, model = self._torch, self._model
        vision, start, step = git_modules(model)
        side = int(model.config.vision_config.image_size)
        examples: dict[str, list[Any]] = {}

        def example(name: str) -> list[Any]:
            """Inputs of the graphs (made once, only when exporting): caches of the image tokens
            and 3 text tokens, so that the exported length axis is not taken for a constant."""
            if not examples:
                with torch.no_grad():
                    pixels = torch.randn(2, 3, side, side)
                    embeds = vision(pixels)
                    _, k, v = start(embeds)
                    for position in (1, 2):
                        _, k, v = step(torch.full((2, 1), position, dtype=torch.long),
                                       torch.full((1, 1), position, dtype=torch.long), k, v)
                examples.update(vision=[pixels], start=[embeds],
                                step=[torch.full((2, 1), 3, dtype=torch.long), torch.full((1, 1), 3, dtype=torch.long), k, v])
            return examples[name]

        cache = {1: "batch", 3: "past"}
        towers = {
            "vision": TowerSpec(vision, lambda: example("vision"), ["pixels"]),
            "decoder-start": TowerSpec(start, lambda: example("start"), ["image_embeds"],
                                       output_names=["logits", "k", "v"], dynamic=[{0: "batch", 1: "image_tokens"}]),
            "decoder-step": TowerSpec(step, lambda: example("step"), ["token", "position", "k", "v"],
                                      output_names=["logits", "next_k", "next_v"],
                                      dynamic=[{0: "batch"}, {}, cache, cache]),
        }
        # keyed by the whole model's weights: the three graphs belong together
        return Towers("git", self.name, model, towers, self.cache_dir, self.torch_threads)

    def onnx_greedy_supported(self) -> bool:
        """Whether the model's generation settings are ones the ONNX greedy loop does (and it
        ends captions at one token)."""
        return greedy_supported(self._model.generation_config) and self._end_token() is not None

    def _end_token(self) -> int | None:
        """The token that ends a caption: the generation config's, else the model config's
        (None when there are several: ``generate`` runs them in torch)."""
        eos = self._model.generation_config.eos_token_id
        eos = self._model.config.eos_token_id if eos is None else eos
        if isinstance(eos, (list, tuple)):
            eos = eos[0] if len(eos) == 1 else None
        return None if eos is None else int(eos)

    def _generate(self, images: Sequence[Any]) -> list[str]:
        import numpy as np

        torch, model = self._torch, self._model
        device = next(model.parameters()).device
        pixels = self._processor(images=list(images), return_tensors="pt")["pixel_values"]
        pixels = pixels.to(device=device, dtype=self._dtype)
        beams, length = self.decoding()
        with torch.inference_mode():
            if self._onnx is None or beams != 1 or not self.onnx_greedy_supported():
                out = model.generate(pixel_values=pixels, max_new_tokens=length, num_beams=beams)
            else:
                out = self._greedy_onnx(np.ascontiguousarray(pixels.numpy()), length)
        return self._texts(out)

    def _greedy_onnx(self, pixels: Any, max_new_tokens: int) -> Any:
        """Greedy decoding in ONNX Runtime: token ids [batch, 1 + generated], as
        ``generate(num_beams=1)`` returns them (BOS first; rows that ended padded)."""
        import numpy as np

        config, onnx = self._model.generation_config, self._onnx
        assert onnx is not None
        eos = self._end_token()
        assert eos is not None
        bos = int(self._model.config.bos_token_id)
        pad = int(config.pad_token_id if config.pad_token_id is not None else self._model.config.pad_token_id)
        decoder_step = onnx["decoder-step"]
        logits, k, v = onnx["decoder-start"].run(onnx["vision"](pixels))
        caches = [k, v]

        def step(token: Any, position: int) -> Any:
            logits, caches[0], caches[1] = decoder_step.run(
                token[:, None], np.full((1, 1), position, dtype=np.int64), caches[0], caches[1])
            return logits

        return greedy_tokens(logits, step, bos, eos, pad, int(getattr(config, "min_length", 0) or 0),
                             max_new_tokens)


class GitSettings(CaptionerSettings):
    """Settings of the ``git`` captioner (``IMGCTX_GIT_*``)."""

    model_config = plugin_config("git")

    model: str = Field(
        DEFAULT_GIT_MODEL, description="GIT captioning model: a hub id or a folder (local_model_path wins).",
    )
    local_model_path: Path | None = Field(None, description="Folder of a GIT captioning model.")


git_factory = captioner_factory(GitCaptioner, GitSettings)


@hookimpl
def register_captioners(register: Any) -> None:
    register("git", git_factory, settings=(GitSettings, HubSettings, TorchSettings))
