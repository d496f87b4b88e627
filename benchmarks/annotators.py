"""What the annotators (EXIF and place, OCR, colours, people) cost the offline preset's ingest.

Method
------
1. **Folder.** ``--photos`` distinct JPEG variants of real photos (``benchmarks/ingest.py``'s
   ``write_variants``: scikit-image and scikit-learn photos, random crops, 640-1600 px, JPEG
   quality 75-95), every second one given real EXIF written with Pillow (date taken, camera,
   GPS of one of eight known cities), plus ``--texts`` images with text: variants of
   scikit-image's printed page and of shop signs drawn with Pillow's bundled font. All bytes
   differ, nothing is skipped. Seeded: the same folder on every run.

2. **Runs**, in one process with the same model instances (EfficientNet-Lite0, MiniLM,
   ``tags-caption``, loaded and warmed up before anything is timed), each into a fresh faiss
   store, ``--repeats`` rounds, best and median reported:

   - **models only**: ``process_many`` with ``annotators=[]``: the pipeline before issue 14;
   - **all on**: the offline preset as shipped (``photo-metadata``, ``colors``,
     ``opencv-people``, ``rapidocr``);
   - **all but X**, for each annotator X: its cost is ``all on`` minus ``all but X``;
   - **all on, text batch 64**: all on with the text embedder's batches as they were before
     (one batch per pipeline batch of 16, padded to its longest text) instead of 8 on CPU;
   - **ceiling**: the models alone on images decoded beforehand (``ingest.run_ceiling``).

3. **OCR per image**: the ``rapidocr`` annotator alone on the decoded images of the photos and
   of the text images, split into the quick detection pass (every image) and the reading (only
   where the pass finds text), with how many images it read.

4. **Peak RSS**: the all-on pipeline alone in a child process (VmHWM), models and data included.

Targets (the issue's): all on keeps >= 60 % of the models-only throughput; peak RSS < 2 GiB.

Usage (from the repository root)::

    python benchmarks/annotators.py [--photos 48] [--texts 16] [--repeats 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from ingest import (  # noqa: E402
    make_settings,
    peak_rss_bytes,
    pipeline_extractor,
    run_ceiling,
    timed,
    wait_for_idle,
    warm_up,
    write_variants,
)
from PIL import Image, ImageDraw, ImageFont, TiffImagePlugin  # noqa: E402

from imgctx import Extractor  # noqa: E402
from imgctx._images import load_image  # noqa: E402
from imgctx._presets import PHOTO_ANNOTATORS  # noqa: E402

GIB = 1024**3
TARGET_KEEP = 0.60
TARGET_RSS = 2 * GIB
CITIES = [(48.8530, 2.3499), (35.6895, 139.6917), (-33.8688, 151.2093), (40.7128, -74.0060),
          (51.5074, -0.1278), (-22.9068, -43.1729), (30.0444, 31.2357), (55.7558, 37.6173)]
CAMERAS = [("Canon", "Canon EOS R5"), ("NIKON CORPORATION", "NIKON D750"), ("Apple", "iPhone 12"),
           ("FUJIFILM", "X-T4")]
SIGNS = ["OPEN 24 HOURS", "NO PARKING", "FRESH COFFEE", "EXIT", "SALE 50% OFF", "PLATFORM 3",
         "CLOSED ON SUNDAY", "WELCOME"]


def _rational(value: float, scale: int = 100) -> TiffImagePlugin.IFDRational:
    return TiffImagePlugin.IFDRational(round(abs(value) * scale), scale)


def add_exif(path: Path, k: int) -> None:
    """Re-save ``path`` with EXIF: a date, a camera and the GPS position of a known city."""
    with Image.open(path) as im:
        img = im.convert("RGB")
    exif = Image.Exif()
    make, model = CAMERAS[k % len(CAMERAS)]
    exif[0x010F], exif[0x0110] = make, model
    exif.get_ifd(0x8769)[0x9003] = f"{2015 + k % 10}:{1 + k % 12:02d}:{1 + k % 28:02d} 12:{k % 60:02d}:00"
    lat, lon = CITIES[k % len(CITIES)]
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = ("N" if lat >= 0 else "S"), (_rational(lat), _rational(0), _rational(0))
    gps[3], gps[4] = ("E" if lon >= 0 else "W"), (_rational(lon), _rational(0), _rational(0))
    img.save(path, "JPEG", quality=88, exif=exif.tobytes())


def write_text_images(folder: Path, n: int, seed: int = 1) -> list[Path]:
    """Variants of a printed page and of drawn signs: images where text is to be read."""
    rng = np.random.default_rng(seed)
    page = Image.fromarray(_page()).convert("RGB")
    out = []
    for k in range(n):
        if k % 2 == 0:
            w, h = page.size
            cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
            img = page.crop((0, 0, cw, ch)).resize((int(cw * 2.5), int(ch * 2.5)), Image.Resampling.LANCZOS)
        else:
            img = Image.new("RGB", (900, 400), tuple(int(c) for c in rng.integers(150, 255, 3)))
            ImageDraw.Draw(img).text((40, 140), SIGNS[k % len(SIGNS)], fill=(20, 20, 30),
                                     font=ImageFont.load_default(size=int(rng.integers(60, 100))))
        path = folder / f"text_{k:03d}.jpg"
        img.save(path, "JPEG", quality=int(rng.integers(80, 96)))
        out.append(path)
    return out


def _page() -> np.ndarray:
    from skimage import data

    return data.page()


def run_with(paths: Sequence[Path], db: Path, settings: Any, components: Any, annotators: Sequence[Any]) -> float:
    ex = pipeline_extractor(db, settings, components, annotators)
    try:
        timing, report = timed(lambda: ex.process_many(paths))
    finally:
        ex.close()
    if report.processed != len(paths) or report.failed:
        raise RuntimeError(f"processed {report.processed}/{len(paths)}: {report.failed_files}")
    return timing.seconds


def child(folder: Path, db: Path, batch_size: int) -> dict[str, float]:
    """In a child process: the offline preset as shipped (all annotators) over the folder."""
    paths = sorted(folder.glob("*.jpg"))
    ex = Extractor(db, preset="offline", settings=make_settings(batch_size))
    warm_up(ex.components, paths, ex.settings)
    try:
        timing, report = timed(lambda: ex.process_many(paths))
    finally:
        ex.close()
    return {"images_per_s": report.processed / timing.seconds, "peak_rss": peak_rss_bytes()}


def ocr_costs(annotator: Any, images: Sequence[Any], paths: Sequence[Path]) -> dict[str, float]:
    annotator.stats.update(probed=0, read=0, probe_seconds=0.0, read_seconds=0.0)
    annotator.annotate(list(images), [str(p) for p in paths])
    s = annotator.stats
    return {"images": s["probed"], "read": s["read"], "probe_ms": 1000 * s["probe_seconds"] / max(1, s["probed"]),
            "read_ms_per_read": 1000 * s["read_seconds"] / max(1, s["read"]),
            "total_ms_per_image": 1000 * (s["probe_seconds"] + s["read_seconds"]) / max(1, s["probed"])}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--photos", type=int, default=48, help="photo variants (default 48)")
    ap.add_argument("--texts", type=int, default=16, help="images with text (default 16)")
    ap.add_argument("--repeats", type=int, default=2, help="timed rounds (default 2)")
    ap.add_argument("--batch-size", type=int, default=make_settings(16).batch_size)
    ap.add_argument("--wait-idle", type=float, default=20.0, metavar="S")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child-db", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.workdir / "photos", args.child_db, args.batch_size)))
        return 0

    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="imgctx-annot-")
    work = args.workdir or Path(tmp.name)  # type: ignore[union-attr]
    folder = work / "photos"
    for old in folder.glob("*.jpg"):
        old.unlink()
    photos = write_variants(folder, args.photos)
    for k, p in enumerate(photos):
        if k % 2 == 0:
            add_exif(p, k)
    texts = write_text_images(folder, args.texts)
    paths = photos + texts
    print(f"{len(photos)} photos ({len(photos[::2])} with EXIF and GPS) and {len(texts)} images with text in {folder}")

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--workdir", str(work),
           "--child-db", str(work / "db-child"), "--batch-size", str(args.batch_size)]
    kid = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    print(f"all on, alone in a child process: {kid['images_per_s']:.2f} img/s, peak RSS {kid['peak_rss'] / GIB:.2f} GiB")

    settings = make_settings(args.batch_size)
    loader = Extractor(work / "db-load", preset="offline", settings=settings)
    components = loader.components
    warm_up(components, paths, settings)
    for a in components.annotators:
        a.load()
    components.annotators[0].annotate([None], [str(photos[0])])  # photo-metadata: load the place data
    loader.close()
    by_name = {a.name: a for a in components.annotators}
    runs: dict[str, list[Any]] = {"models only": [], "all on": list(components.annotators)}
    for name in PHOTO_ANNOTATORS:
        runs[f"all but {name}"] = [a for a in components.annotators if a.name != name]
    before_batching = "all on, text batch 64"  # the text embedder as it was: one batch for 16 docs
    runs[before_batching] = list(components.annotators)
    pre_decoded = [load_image(p, settings.max_image_pixels, settings.max_file_bytes, 224).image for p in paths]
    seconds: dict[str, list[float]] = {k: [] for k in (*runs, "ceiling")}
    for r in range(args.repeats):
        for k, annotators in runs.items():
            wait_for_idle(args.wait_idle, say=lambda *a: None)
            components.text_embedder.batch_size = 64 if k == before_batching else None
            seconds[k].append(run_with(paths, work / f"db-{r}-{len(seconds[k])}-{k.replace(' ', '_').replace(',', '')}",
                                       settings, components, annotators))
            components.text_embedder.batch_size = None
        seconds["ceiling"].append(run_ceiling(pre_decoded, settings.batch_size, components).seconds)
        print(f"round {r + 1}: " + ", ".join(f"{k} {len(paths) / v[-1]:.1f}" for k, v in seconds.items()) + " img/s")

    ocr = by_name["rapidocr"]
    n_ph = len(photos)
    costs = {"photos (no text)": ocr_costs(ocr, pre_decoded[:n_ph], photos),
             "images with text": ocr_costs(ocr, pre_decoded[n_ph:], texts)}
    if tmp is not None:
        tmp.cleanup()

    n = len(paths)
    ips = {k: n / min(v) for k, v in seconds.items()}
    med = {k: n / statistics.median(v) for k, v in seconds.items()}
    base = ips["models only"]
    print(f"\n{n} files, batch size {args.batch_size}, best of {args.repeats} (median beside it)")
    print(f"{'run':<26}{'img/s':>8}{'median':>8}{'vs models only':>16}{'ms/img added':>14}")
    for k in seconds:
        added = 1000 * (1 / ips[k] - 1 / base)
        print(f"{k:<26}{ips[k]:>8.2f}{med[k]:>8.2f}{100 * ips[k] / base:>15.0f}%{added:>14.1f}")
    each = {name: 1000 * (1 / ips["all on"] - 1 / ips[f"all but {name}"]) for name in PHOTO_ANNOTATORS}
    print("cost of each annotator (all on minus all but it), ms per image: "
          + ", ".join(f"{k} {v:.1f}" for k, v in each.items()))
    for k, c in costs.items():
        print(f"OCR on {k}: {c['images']} images, read {c['read']}; quick pass {c['probe_ms']:.1f} ms/img, "
              f"reading {c['read_ms_per_read']:.0f} ms per image read, {c['total_ms_per_image']:.1f} ms/img in all")
    keep = ips["all on"] / base
    checks = {"all on >= 60% of models only": (keep >= TARGET_KEEP, f"{100 * keep:.0f}%"),
              "peak RSS < 2 GiB": (kid["peak_rss"] < TARGET_RSS, f"{kid['peak_rss'] / GIB:.2f} GiB")}
    for name, (ok, value) in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "files": n, "images_per_s": ips, "median_images_per_s": med, "annotator_ms": each,
            "ocr": costs, "child": kid, "checks": {k: v[0] for k, v in checks.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
