"""The offline preset's classifier: EfficientNet-Lite0, Lite1 and Lite2, accuracy against speed.

Method
------
- **Variants.** ``efficientnet-lite0`` (224 px), ``-lite1`` (240 px) and ``-lite2`` (260 px)
  with the input scaling they were trained with ((x - 127) / 128), and Lite0 with the ImageNet
  mean and deviation that imgctx fed it before (``IMGCTX_EFFICIENTNET_NORMALIZATION=imagenet``),
  to show what that fix is worth.
- **Accuracy on ImageNet** is not measured here (the validation set cannot be had offline): the
  table gives the published top-1 of the TensorFlow checkpoints these weights were converted
  from (tensorflow/tpu, models/official/efficientnet/lite: 75.1 %, 76.7 %, 77.6 %).
- **Retrieval** (what users get): the photos and queries of ``benchmarks/retrieval.py`` (61 real
  photos, 142 queries written beforehand), each variant as tagger and image embedder of the
  offline preset (annotators on, as shipped), ``Extractor.search``; R@1, R@5, MRR.
- **Speed**: the classifier alone (``analyze``: tags and image vectors) on the 61 photos decoded
  beforehand at the variant's input size, in batches of 16, ``--repeats`` interleaved rounds,
  best; and the whole offline-preset ingest of the folder (decode, annotators, text vectors,
  store) once per variant, after the retrieval index (so every model is warm).

Usage (from the repository root)::

    python benchmarks/classifiers.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval import QUERIES, default_cache, mrr, recall, write_photos  # noqa: E402

from imgctx import Extractor  # noqa: E402
from imgctx._backends.offline import LITE_VARIANTS, EfficientNetLite  # noqa: E402
from imgctx._images import load_image  # noqa: E402

RUNS = [("lite0", 0, "inception"), ("lite1", 1, "inception"), ("lite2", 2, "inception"),
        ("lite0, old scaling", 0, "imagenet")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--cache", type=Path, default=default_cache())
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="imgctx-classifiers-") as tmp:
        work = Path(tmp)
        paths = write_photos(work / "photos", args.cache)
        by_path = {os.path.abspath(p): n for n, p in paths.items()}
        models = {label: EfficientNetLite(variant=v, normalization=norm) for label, v, norm in RUNS}
        out: dict[str, dict[str, float]] = {}
        for label, model in models.items():
            db = work / f"db-{label.replace(' ', '_').replace(',', '')}"
            with Extractor(db, preset="offline", tagger=[model], image_embedder=model) as ex:
                t0 = time.perf_counter()
                report = ex.process_directory(work / "photos")
                first = time.perf_counter() - t0
                if report.failed or report.processed != len(paths):
                    raise RuntimeError(f"{label}: indexed {report.processed}/{len(paths)}")
                ranks = []
                for query, expected in QUERIES:
                    hits = [by_path[h.record.path] for h in ex.search(query, limit=len(paths))]
                    ranks.append(hits.index(expected) + 1)
            shutil.rmtree(db)
            with Extractor(db, preset="offline", tagger=[model], image_embedder=model) as ex:
                t0 = time.perf_counter()
                ex.process_directory(work / "photos")
                ingest = time.perf_counter() - t0
            out[label] = {"R@1": recall(ranks, 1), "R@5": recall(ranks, 5), "MRR": mrr(ranks),
                          "ingest_img_s": len(paths) / min(first, ingest)}
            print(f"{label}: R@5 {out[label]['R@5']:.3f}, ingest {out[label]['ingest_img_s']:.2f} img/s", flush=True)

        decoded = {v: [load_image(p, 10**9, 10**9, LITE_VARIANTS[v][0]).image for p in paths.values()]
                   for v in LITE_VARIANTS}
        best: dict[str, float] = {label: float("inf") for label in models}
        for _ in range(args.repeats):
            for label, v, _norm in RUNS:
                images = decoded[v]
                t0 = time.perf_counter()
                for s in range(0, len(images), 16):
                    models[label].analyze(images[s:s + 16])
                best[label] = min(best[label], time.perf_counter() - t0)
        base = len(paths) / best["lite0"]
        print(f"\n{len(paths)} photos, {len(QUERIES)} queries; speed: best of {args.repeats}, batches of 16")
        print(f"{'classifier':<20}{'ImageNet top-1':>15}{'R@1':>7}{'R@5':>7}{'MRR':>7}{'model img/s':>13}"
              f"{'vs lite0':>9}{'ingest img/s':>14}")
        for label, v, _norm in RUNS:
            ips = len(paths) / best[label]
            out[label].update(model_img_s=ips, published_top1=LITE_VARIANTS[v][1])
            r = out[label]
            print(f"{label:<20}{100 * LITE_VARIANTS[v][1]:>14.1f}%{r['R@1']:>7.3f}{r['R@5']:>7.3f}{r['MRR']:>7.3f}"
                  f"{ips:>13.1f}{ips / base:>8.2f}x{r['ingest_img_s']:>14.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
