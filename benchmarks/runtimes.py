"""torch vs ONNX Runtime for the standard preset on the full-size architectures (random weights):
fidelity and images/s, in one command.

Method
------
The published weights cannot be downloaded here, so BLIP base (ViT-B/16 at 384 px + BERT-base
decoder) and open_clip ViT-B-32 are built with random weights (``benchmarks/models.py``'s
builders): the cost and the numerics of the graphs are the real ones, not the quality. The
images are ``--images`` distinct crops of real photos (scikit-image's samples).

1. Export: ``runtime="onnx"`` on a fresh cache folder exports each tower once (timed).
2. Fidelity: cosine between torch and ONNX vectors on the same images and texts (fp32, target
   >= 0.9999); the same for the int8 image tower, plus the top-k agreement of text-to-image
   rankings (for each of 20 text queries, the share of torch's top-k images that int8 also ranks
   in its top-k); greedy caption tokens, torch (``model.generate``) vs ONNX encoder + torch
   decoder and vs ONNX encoder + ONNX decoder (the shipped ONNX path), token for token.
3. Speed, at batch 1 and 16 (one ``embed_images``/``caption`` call per batch), best of
   ``--repeats`` rounds: CLIP image vectors (torch, ONNX, ONNX int8), BLIP captions (torch with
   the old defaults: 3 beams, 30 tokens; torch greedy 20 tokens, the new CPU default; ONNX
   encoder and decoder, greedy 20 tokens). "With captions" is 1 / (CLIP s/image + BLIP s/image). Random
   weights never emit the end token, so every caption runs to its maximum length: an upper
   bound of real captioning time, equal for every variant.

Peak RSS is the whole process's (every variant is loaded in it), reported for information.

Usage::

    python benchmarks/runtimes.py [--images 16] [--repeats 2] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import build_full_size_blip, build_full_size_git, build_full_size_open_clip, rss, write_images  # noqa: E402

QUERIES = [f"a photo of {w}" for w in (
    "a cat", "a dog", "coffee", "a rocket", "an astronaut", "a motorcycle", "the moon", "a coin",
    "a city street", "a beach", "a horse", "a clock", "a bowl of soup", "a man", "a woman",
    "a galaxy", "a tree", "a car", "a bird", "a book")]


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def per_image(run: Any, items: list[Any], batch: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in range(0, len(items), batch):
            run(items[s:s + batch])
        best = min(best, (time.perf_counter() - t0) / len(items))
    return best


def greedy_in_fours(model: Any, pixels: Any) -> Any:
    """The reference tokens: ``generate`` greedy with 20 new tokens, in the captioners' CPU
    micro-batches of 4."""
    import torch

    return torch.cat([model.generate(pixel_values=pixels[s:s + 4], max_new_tokens=20, num_beams=1)
                      for s in range(0, len(pixels), 4)])


def same_rows(ref: list[list[int]], got: list[list[int]]) -> str:
    """How many token rows are identical, as "k/n"."""
    return f"{sum(a == b for a, b in zip(ref, got, strict=True))}/{len(ref)}"


def topk_agreement(img_a: np.ndarray, txt_a: np.ndarray, img_b: np.ndarray, txt_b: np.ndarray, k: int) -> float:
    ra, rb = np.argsort(-(txt_a @ img_a.T), axis=1)[:, :k], np.argsort(-(txt_b @ img_b.T), axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ra, rb, strict=True)]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--captioners", default="blip,git",
                    help="which captioners' torch and ONNX variants to run (the old BLIP default, the "
                         "baseline, always runs)")
    args = ap.parse_args()
    captioners = set(args.captioners.split(","))

    import torch
    from PIL import Image

    from imgctx._backends.blip import BlipCaptioner
    from imgctx._backends.clip import OpenClipModel
    from imgctx._backends.git_caption import GitCaptioner, git_modules

    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"images": args.images, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="imgctx-runtimes-") as tmp:
        work = Path(tmp)
        paths = write_images(work / "images", args.images)
        images = [Image.open(p).convert("RGB") for p in paths]
        clip_dir, blip_dir, cache = build_full_size_open_clip(work / "vit-b-32"), build_full_size_blip(work / "blip"), work / "cache"
        common = dict(pretrained=None, cache_dir=cache, torch_threads=args.threads)
        clip_t = OpenClipModel(model=str(clip_dir), runtime="torch", **common)
        t0 = time.perf_counter()
        clip_o = OpenClipModel(model=str(clip_dir), runtime="onnx", **common)
        clip_o.load()
        t1 = time.perf_counter()
        clip_q = OpenClipModel(model=str(clip_dir), runtime="onnx", int8=True, **common)
        clip_q.load()
        t2 = time.perf_counter()
        blip_kw = dict(model=str(blip_dir), cache_dir=cache, torch_threads=args.threads)
        out["export_s"] = {"clip (image + text)": t1 - t0, "clip int8 quantisation": t2 - t1}
        if "blip" in captioners:
            blip_o = BlipCaptioner(runtime="onnx", max_length=20, num_beams=1, **blip_kw)
            blip_o.load()
            out["export_s"]["blip (vision encoder, text decoder)"] = time.perf_counter() - t2
        if "git" in captioners:
            git_kw = dict(model=str(build_full_size_git(work / "git")), cache_dir=cache, torch_threads=args.threads)
            t3 = time.perf_counter()
            git_o = GitCaptioner(runtime="onnx", max_length=20, num_beams=1, **git_kw)
            git_o.load()
            out["export_s"]["git (vision encoder, decoder)"] = time.perf_counter() - t3
            git_t = GitCaptioner(runtime="torch", max_length=20, num_beams=1, **git_kw)

        # -- fidelity -------------------------------------------------------------------------
        vt, vo, vq = clip_t.embed_images(images), clip_o.embed_images(images), clip_q.embed_images(images)
        tt, to, tq = clip_t.embed_texts(QUERIES), clip_o.embed_texts(QUERIES), clip_q.embed_texts(QUERIES)
        out["fidelity"] = {
            "clip image cosine onnx fp32 (min)": float(cos(vt, vo).min()),
            "clip text cosine onnx fp32 (min)": float(cos(tt, to).min()),
            "clip image cosine int8 (min)": float(cos(vt, vq).min()),
            "clip image cosine int8 (mean)": float(cos(vt, vq).mean()),
            "text-to-image top-1 agreement int8": topk_agreement(vt, tt, vq, tq, 1),
            "text-to-image top-5 agreement int8": topk_agreement(vt, tt, vq, tq, 5),
            "text-to-image top-5 agreement onnx fp32": topk_agreement(vt, tt, vo, to, 5),
        }
        if "blip" in captioners:
            blip_t = BlipCaptioner(runtime="torch", max_length=20, num_beams=1, **blip_kw)
            blip_t.load()
            proc, model = blip_t._processor, blip_t._model
            pixels = proc(images=images, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                ref_tokens = greedy_in_fours(model, pixels)
                ref_embeds = model.vision_model(pixel_values=pixels)[0].numpy()
                embeds = blip_o._onnx["vision"](pixels.numpy())
                tokens = torch.cat([blip_o._decode(torch.from_numpy(embeds[s:s + 4]), max_new_tokens=20, num_beams=1)
                                    for s in range(0, len(images), 4)])
            onnx_tokens = [row for s in range(0, len(images), 4) for row in blip_o._greedy_onnx(embeds[s:s + 4], 20).tolist()]
            out["fidelity"].update({
                "blip vision embeddings cosine onnx (min)": float(cos(ref_embeds, embeds).min()),
                "blip greedy captions identical token for token (onnx encoder, torch decoder)": same_rows(ref_tokens.tolist(), tokens.tolist()),
                "blip greedy captions identical token for token (onnx encoder and decoder)": same_rows(ref_tokens.tolist(), onnx_tokens),
            })
        if "git" in captioners:
            git_t.load()
            proc, model = git_t._processor, git_t._model
            pixels = proc(images=images, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                ref_tokens = greedy_in_fours(model, pixels)
                ref_embeds = git_modules(model)[0](pixels).numpy()
            embeds = git_o._onnx["vision"](pixels.numpy())
            onnx_tokens = [row for s in range(0, len(images), 4)
                           for row in git_o._greedy_onnx(pixels[s:s + 4].numpy(), 20).tolist()]
            out["fidelity"].update({
                "git image tokens cosine onnx (min)": float(cos(ref_embeds, embeds).min()),
                "git greedy captions identical token for token (onnx)": same_rows(ref_tokens.tolist(), onnx_tokens),
            })
        for k, v in out["fidelity"].items():
            print(f"{k}: {v if isinstance(v, str) else f'{v:.6f}'}", flush=True)

        # -- speed ----------------------------------------------------------------------------
        blip_old = BlipCaptioner(runtime="torch", max_length=30, num_beams=3, **blip_kw)
        speed: dict[str, dict[int, float]] = {}
        variants = [("clip torch", clip_t.embed_images), ("clip onnx", clip_o.embed_images),
                    ("clip onnx int8", clip_q.embed_images), ("blip torch 3 beams 30 tokens (old default)", blip_old.caption)]
        combos = {"with captions, torch, old defaults": ("clip torch", "blip torch 3 beams 30 tokens (old default)")}
        compared = []
        if "blip" in captioners:
            variants += [("blip torch greedy 20 tokens (new CPU default)", blip_t.caption),
                         ("blip onnx greedy 20 tokens (encoder and decoder)", blip_o.caption)]
            combos.update({"with captions, torch, greedy 20": ("clip torch", "blip torch greedy 20 tokens (new CPU default)"),
                           "with captions, onnx, greedy 20": ("clip onnx", "blip onnx greedy 20 tokens (encoder and decoder)")})
            compared += [("with captions onnx greedy / torch old", "with captions, onnx, greedy 20"),
                         ("with captions torch greedy / torch old", "with captions, torch, greedy 20")]
        if "git" in captioners:
            variants += [("git torch greedy 20 tokens", git_t.caption), ("git onnx greedy 20 tokens", git_o.caption)]
            combos.update({"with captions, torch, git greedy 20": ("clip torch", "git torch greedy 20 tokens"),
                           "with captions, onnx, git greedy 20": ("clip onnx", "git onnx greedy 20 tokens")})
            compared += [("with git captions torch / torch old", "with captions, torch, git greedy 20"),
                         ("with git captions onnx / torch old", "with captions, onnx, git greedy 20")]
        for name, run in variants:
            run(images[:2])  # warm-up
            speed[name] = {b: per_image(run, images, b, args.repeats) for b in (1, 16)}
            print(f"{name}: " + ", ".join(f"b={b} {1 / s:.2f} img/s" for b, s in speed[name].items()), flush=True)
        out["images_per_s"] = {name: {b: 1 / s for b, s in t.items()} for name, t in speed.items()}
        for name, (c, b) in combos.items():
            out["images_per_s"][name] = {n: 1 / (speed[c][n] + speed[b][n]) for n in (1, 16)}
        base = out["images_per_s"]
        out["ratios"] = {
            f"{what} b={n}": base[new][n] / base[old][n]
            for n in (1, 16)
            for what, new, old in (("clip onnx / torch", "clip onnx", "clip torch"),
                                   ("clip onnx int8 / torch", "clip onnx int8", "clip torch"),
                                   *((what, new, "with captions, torch, old defaults") for what, new in compared))
        }
        out["peak_rss_mib"] = rss("VmHWM") / 1024**2
    print(json.dumps({k: out[k] for k in ("export_s", "images_per_s", "ratios", "peak_rss_mib")}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
