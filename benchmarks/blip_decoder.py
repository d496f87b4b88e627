"""BLIP's text decoder alone: torch (``text_decoder.generate``) vs ONNX Runtime (the exported
``decoder-start``/``decoder-step`` graphs and the greedy loop), on the same image embeddings,
in one command.

Method
------
BLIP base with random weights (``benchmarks/models.py``'s builder: the full-size BERT-base
decoder cross-attending to 577 image tokens of 768 values), ``--images`` distinct crops of real
photos encoded once by the ONNX vision encoder. Then, per micro-batch size (1 and 4, the CPU
default), greedy decoding of 20 new tokens (random weights never emit the end token, so every
caption runs to the maximum: equal work for both), torch and ONNX alternating for
``--repeats`` rounds at ``--threads`` threads each; the median seconds per image of each, and
their ratio. The tokens of the two are compared one for one.

Usage::

    python benchmarks/blip_decoder.py [--images 8] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import build_full_size_blip, write_images  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from PIL import Image

    from imgctx._backends.blip import BlipCaptioner

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="imgctx-blip-decoder-") as tmp:
        work = Path(tmp)
        images = [Image.open(p).convert("RGB") for p in write_images(work / "images", args.images)]
        blip = BlipCaptioner(model=str(build_full_size_blip(work / "blip")), runtime="onnx", cache_dir=work / "cache",
                             torch_threads=args.threads, max_length=20, num_beams=1)
        blip.load()
        assert blip._onnx is not None and blip.onnx_greedy_supported()
        pixels = blip._processor(images=images, return_tensors="pt")["pixel_values"].numpy()
        embeds = blip._onnx["vision"](pixels)

        def torch_decoder(e):  # what the ONNX encoder path did before: generate in torch
            with torch.inference_mode():
                return blip._decode(torch.from_numpy(e), max_new_tokens=20, num_beams=1).tolist()

        def onnx_decoder(e):
            return blip._greedy_onnx(e, 20).tolist()

        for micro in (1, 4):
            chunks = [embeds[s:s + micro] for s in range(0, len(embeds), micro)]
            same = sum(a == b for c in chunks for a, b in zip(torch_decoder(c), onnx_decoder(c), strict=True))
            times: dict[str, list[float]] = {"torch": [], "onnx": []}
            for _ in range(args.repeats):
                for name, run in (("torch", torch_decoder), ("onnx", onnx_decoder)):
                    t0 = time.perf_counter()
                    for c in chunks:
                        run(c)
                    times[name].append((time.perf_counter() - t0) / len(embeds))
            t, o = statistics.median(times["torch"]), statistics.median(times["onnx"])
            print(f"micro-batch {micro}: torch {t * 1e3:.0f} ms/image, onnx {o * 1e3:.0f} ms/image, "
                  f"onnx {t / o:.2f}x faster; tokens identical for {same}/{len(embeds)} images", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
