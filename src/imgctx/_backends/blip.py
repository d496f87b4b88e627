"""``blip``: image captions from a transformers BLIP captioning model.

``Salesforce/blip-image-captioning-base`` by default; ``-large`` or any BLIP captioning model id
or folder via ``IMGCTX_BLIP_MODEL`` / ``IMGCTX_BLIP_LOCAL_MODEL_PATH``. Captions are generated in micro-batches
(``IMGCTX_BLIP_BATCH_SIZE``; 4 images per call on CPU by default, the whole batch on CUDA).

Decoding: greedy with at most 20 new tokens on CPU by default (BLIP's captions are about 10-15
tokens; beam search multiplies the decoder's work by the beam count), 3 beams and 30 tokens on
CUDA; ``IMGCTX_BLIP_NUM_BEAMS`` and ``IMGCTX_BLIP_MAX_LENGTH`` set both everywhere.

Runtime (``IMGCTX_BLIP_RUNTIME``, see ``onnx_runtime``): with ``onnx`` the vision encoder (a
ViT-B/16 at 384 px, most of a caption's cost) and the text decoder run in ONNX Runtime. The
decoder is exported as two graphs with explicit key/value caches: ``decoder-start`` (the image
embeddings -> every layer's cross-attention keys and values, computed once per image, and the
first step from the BOS token) and ``decoder-step`` (one more token with the caches -> its
logits and the grown self-attention caches). Greedy decoding then loops over ``decoder-step``
in numpy, doing what ``BlipForConditionalGeneration.generate`` does (BOS prompt, stop at the
SEP token, pad finished rows, honour ``min_length``); the tests and ``benchmarks/runtimes.py``
check the tokens are identical. Beam search, and generation settings this loop does not
implement (a repetition penalty, banned n-grams, ...), run the decoder in torch
(``text_decoder.generate``) on the ONNX encoder's output.
"""

from __future__ import annotations

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
    method_module,
)
from imgctx._backends.torch_common import TorchSettings
from imgctx._errors import MissingDependencyError
from imgctx._hookspecs import hookimpl
from imgctx._settings import contract_name, plugin_config

DEFAULT_BLIP_MODEL = "Salesforce/blip-image-captioning-base"


def decoder_modules(model: Any) -> tuple[Any, Any]:
    """BLIP's text decoder (``model.text_decoder``, a ``BlipTextLMHeadModel``) as two torch
    modules with explicit caches, for export (shapes: L layers, B images, H heads, D head size,
    S image tokens, t tokens so far):

    - ``start(image_embeds [B, S, E])`` -> the BOS step's ``logits [B, V]``, its self-attention
      keys and values ``[L, B, H, 1, D]`` and the cross-attention keys and values ``[L, B, H, S, D]``;
    - ``step(token [B, 1], position [1, 1], self_k, self_v [L, B, H, t, D], cross_k, cross_v)``
      -> ``logits [B, V]`` and the self-attention caches grown to ``t + 1``.

    The same weights and the same operations as ``BlipTextLMHeadModel.forward`` in eval mode with
    a full attention mask (one new token attends to every earlier one; every image token is
    attended to)."""
    import math

    import torch

    lm = model.text_decoder
    bert, head = lm.bert, lm.cls
    layers = list(bert.encoder.layer)
    heads = int(lm.config.num_attention_heads)
    size = int(lm.config.hidden_size) // heads
    root = math.sqrt(size)
    bos = int(model.config.text_config.bos_token_id)

    def split(x: Any) -> Any:  # [B, T, H*D] -> [B, H, T, D]
        return x.view(x.shape[0], x.shape[1], heads, size).transpose(1, 2)

    def attend(q: Any, k: Any, v: Any) -> Any:  # -> [B, T, H*D]
        probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / root, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.shape[0], ctx.shape[1], heads * size)

    def run(tokens: Any, position: Any, past_k: Any, past_v: Any, cross_k: Any, cross_v: Any) -> tuple[Any, Any, Any]:
        emb = bert.embeddings
        x = emb.LayerNorm(emb.word_embeddings(tokens) + emb.position_embeddings(position))
        ks, vs = [], []
        for i, layer in enumerate(layers):
            sa = layer.attention.self
            k, v = split(sa.key(x)), split(sa.value(x))
            if past_k is not None:
                k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            ks.append(k)
            vs.append(v)
            x = layer.attention.output(attend(split(sa.query(x)), k, v), x)
            ca = layer.crossattention.self
            x = layer.crossattention.output(attend(split(ca.query(x)), cross_k[i], cross_v[i]), x)
            x = layer.output(layer.intermediate(x), x)
        return head(x)[:, -1], torch.stack(ks), torch.stack(vs)

    class Start(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, image_embeds: Any) -> tuple[Any, ...]:
            cross_k = torch.stack([split(layer.crossattention.self.key(image_embeds)) for layer in layers])
            cross_v = torch.stack([split(layer.crossattention.self.value(image_embeds)) for layer in layers])
            tokens = torch.full((image_embeds.shape[0], 1), bos, dtype=torch.long)
            position = torch.zeros((1, 1), dtype=torch.long)
            logits, k, v = run(tokens, position, None, None, cross_k, cross_v)
            return logits, k, v, cross_k, cross_v

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, token: Any, position: Any, self_k: Any, self_v: Any, cross_k: Any,
                    cross_v: Any) -> tuple[Any, Any, Any]:
            return run(token, position, self_k, self_v, cross_k, cross_v)

    return Start().eval(), Step().eval()


class BlipCaptioner(HubCaptioner):
    """Captions with ``BlipForConditionalGeneration.generate``, batch by batch."""

    #: BLIP's image processor resizes to 384x384; images are decoded to at least this short side.
    input_size = 384
    kind = "blip"

    def __init__(self, model: str = DEFAULT_BLIP_MODEL, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)

    what = "the BLIP captioning model"
    local_setting = "IMGCTX_LOCAL_BLIP_MODEL_PATH"

    def _classes(self) -> tuple[Any, Any]:
        try:
            from transformers import BlipForConditionalGeneration, BlipProcessor
        except ImportError:
            raise MissingDependencyError("the blip captioner", "standard") from None
        return BlipProcessor, BlipForConditionalGeneration

    def _model_input_size(self, processor: Any, model: Any) -> int:
        size = getattr(processor.image_processor, "size", None) or {}
        return int(size.get("height", self.input_size)) if isinstance(size, dict) else self.input_size

    def _onnx_towers(self) -> Towers:
        model, torch = self._model, self._torch
        vision = model.vision_model
        side = int(model.config.vision_config.image_size)
        pixels = torch.randn(2, 3, side, side)
        start, step = decoder_modules(model)
        examples: dict[str, list[Any]] = {}

        def decoder_examples() -> dict[str, list[Any]]:
            """Inputs of the two decoder graphs (run once, only when exporting): caches of 3
            tokens, so that the exported length axis is not taken for a constant 1."""
            if not examples:
                with torch.no_grad():
                    embeds = vision(pixel_values=pixels)[0]
                    _, k, v, ck, cv = start(embeds)
                    for position in (1, 2):
                        token = torch.full((2, 1), position, dtype=torch.long)
                        _, k, v = step(token, torch.full((1, 1), position, dtype=torch.long), k, v, ck, cv)
                examples["start"] = [embeds]
                examples["step"] = [torch.full((2, 1), 3, dtype=torch.long), torch.full((1, 1), 3, dtype=torch.long),
                                    k, v, ck, cv]
            return examples

        cache, cross = {1: "batch", 3: "past"}, {1: "batch", 3: "image_tokens"}
        towers = {
            "vision": TowerSpec(method_module(vision, "forward"), [pixels], ["pixels"]),
            "decoder-start": TowerSpec(start, lambda: decoder_examples()["start"], ["image_embeds"],
                                       output_names=["logits", "self_k", "self_v", "cross_k", "cross_v"],
                                       dynamic=[{0: "batch", 1: "image_tokens"}]),
            "decoder-step": TowerSpec(step, lambda: decoder_examples()["step"],
                                      ["token", "position", "self_k", "self_v", "cross_k", "cross_v"],
                                      output_names=["logits", "next_self_k", "next_self_v"],
                                      dynamic=[{0: "batch"}, {}, cache, cache, cross, cross]),
        }
        # keyed by the whole model's weights: the encoder and decoder exports belong together
        return Towers("blip", self.name, model, towers, self.cache_dir, self.torch_threads)

    def _generate(self, images: Sequence[Any]) -> list[str]:
        torch = self._torch
        device = next(self._model.parameters()).device
        inputs = self._processor(images=list(images), return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=device, dtype=self._dtype)
        beams, length = self.decoding()
        with torch.inference_mode():
            if self._onnx is None:
                out = self._model.generate(pixel_values=pixels, max_new_tokens=length, num_beams=beams)
            else:
                embeds = self._onnx["vision"](pixels.numpy())
                if beams == 1 and self.onnx_greedy_supported():
                    out = self._greedy_onnx(embeds, length)
                else:
                    out = self._decode(torch.from_numpy(embeds), max_new_tokens=length, num_beams=beams)
        return self._texts(out)

    def onnx_greedy_supported(self) -> bool:
        """Whether the text decoder's generation settings are ones the ONNX greedy loop does
        (no sampling, no repetition penalty, no banned or forced tokens); otherwise the decoder
        runs in torch."""
        return greedy_supported(self._model.text_decoder.generation_config)

    def _greedy_onnx(self, image_embeds: Any, max_new_tokens: int) -> Any:
        """Greedy decoding in ONNX Runtime: token ids [batch, 1 + generated], as
        ``generate(num_beams=1)`` returns them (BOS first; rows that ended padded)."""
        import numpy as np

        text = self._model.config.text_config
        min_length = int(getattr(self._model.text_decoder.generation_config, "min_length", 0) or 0)
        assert self._onnx is not None
        decoder_step = self._onnx["decoder-step"]
        logits, k, v, cross_k, cross_v = self._onnx["decoder-start"].run(np.ascontiguousarray(image_embeds))
        caches = [k, v]

        def step(token: Any, position: int) -> Any:
            logits, caches[0], caches[1] = decoder_step.run(
                token[:, None], np.full((1, 1), position, dtype=np.int64), caches[0], caches[1], cross_k, cross_v)
            return logits

        return greedy_tokens(logits, step, int(text.bos_token_id), int(text.sep_token_id), int(text.pad_token_id),
                             min_length, max_new_tokens)

    def _decode(self, image_embeds: Any, **generate_kwargs: Any) -> Any:
        """What ``BlipForConditionalGeneration.generate`` does after its vision model: the text
        decoder, prompted with the BOS token, cross-attending to ``image_embeds``."""
        torch, model = self._torch, self._model
        text = model.config.text_config
        n = image_embeds.shape[0]
        input_ids = torch.full((n, 1), text.bos_token_id, dtype=torch.long)
        mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
        return model.text_decoder.generate(
            input_ids=input_ids, eos_token_id=text.sep_token_id, pad_token_id=text.pad_token_id,
            attention_mask=None, encoder_hidden_states=image_embeds, encoder_attention_mask=mask,
            **generate_kwargs,
        )


class BlipSettings(CaptionerSettings):
    """Settings of the ``blip`` captioner (``IMGCTX_BLIP_*``)."""

    model_config = plugin_config("blip")

    model: str = Field(
        DEFAULT_BLIP_MODEL, description="BLIP captioning model: a hub id or a folder (local_model_path wins).",
    )
    local_model_path: Path | None = Field(
        None, validation_alias=contract_name("BLIP_LOCAL_MODEL_PATH", "IMGCTX_LOCAL_BLIP_MODEL_PATH",
                                             "LOCAL_BLIP_MODEL_PATH"),
        description="Folder of a BLIP captioning model (also LOCAL_BLIP_MODEL_PATH).",
    )


blip_factory = captioner_factory(BlipCaptioner, BlipSettings)


@hookimpl
def register_captioners(register: Any) -> None:
    register("blip", blip_factory, settings=(BlipSettings, HubSettings, TorchSettings))
