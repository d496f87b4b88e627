"""Text-to-image retrieval quality of the offline preset on real photos, against a plain baseline.

Method
------
- **Photos.** 19 real photos that ship in PyPI wheels: scikit-image's chelsea (a tabby cat's
  face), coffee, astronaut, rocket, motorcycle_left, hubble_deep_field, camera (a man with a
  film camera on a tripod), clock (``clock_motion.png``, a motion-blurred wall clock), coins,
  moon, page (a scanned page of text), brick, grass, gravel, immunohistochemistry
  (``ihc.png``), retina, colorwheel (``color.png``), and scikit-learn's china.jpg (a pagoda)
  and flower.jpg (a dahlia). Grayscale ones are converted to RGB; all are written as PNG.
- **Queries.** 2-3 natural queries per photo, each with that photo as its single correct
  answer, written from what the photos show (as a user would phrase them), not from the
  ImageNet label names, and not tuned after seeing results.
- **offline**: ``Extractor(preset="offline").process_directory(folder)`` then
  ``Extractor.search(query)``: MiniLM cosine between the query and each image's text document
  (its object tags, coarse nouns first, then below-threshold candidates: the coarse nouns of the
  three most likely classes and the ten most likely labels; the caption composed from tags is
  left out as it repeats them). EfficientNet-Lite0 vectors are not cross-modal, so they do not
  take part in text search.
- **offline (previous)**: the offline preset without its annotators (``annotators=[]``): what
  it was before photo metadata, text, colours and people (issue 14) fed the text document.
- **baseline**: the same EfficientNet-Lite0 probabilities on the same decoded image
  (``imgctx._images.load_image``, then the model's own preprocessing): its top-5 ImageNet label
  names joined into one sentence ("tabby, tiger cat, Egyptian cat, lynx, plastic bag"),
  embedded with the same MiniLM model, ranked by cosine to the query embedding. No coarse
  nouns, no caption, no threshold.
- **Metrics.** R@1 and R@5: the share of queries whose correct photo is ranked first / in the
  top five of the 19; MRR, the mean of 1/rank. Every method ranks all 19 photos.
- **Ties.** Photos whose indexed text is identical (the offline preset writes "a photo with no
  recognised objects" for every photo without a tag) get identical vectors, and
  ``Extractor.search`` breaks such ties by record id, a hash of the file's absolute path. The
  default work folder therefore has a fixed name (``<tmp>/imgctx-retrieval-benchmark``, wiped
  before and after, locked while in use), so that every run ranks the same way.

Usage (from the repository root)::

    .venv/bin/python benchmarks/retrieval.py [--json out.json | --json -] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from imgctx import Extractor  # noqa: E402
from imgctx._backends.imagenet import labels  # noqa: E402
from imgctx._images import load_image  # noqa: E402

#: Photo name -> (package, file inside the package's image folder).
PHOTOS: dict[str, tuple[str, str]] = {
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "astronaut": ("skimage", "astronaut.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "camera": ("skimage", "camera.png"),
    "clock": ("skimage", "clock_motion.png"),
    "coins": ("skimage", "coins.png"),
    "moon": ("skimage", "moon.png"),
    "page": ("skimage", "page.png"),
    "brick": ("skimage", "brick.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "immunohistochemistry": ("skimage", "ihc.png"),
    "retina": ("skimage", "retina.jpg"),
    "colorwheel": ("skimage", "color.png"),
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
}

#: (query, the one photo that answers it).
QUERIES: tuple[tuple[str, str], ...] = (
    ("a tabby cat", "chelsea"),
    ("close-up of a cat's face", "chelsea"),
    ("my cat", "chelsea"),
    ("a cup of espresso", "coffee"),
    ("coffee cup on a saucer", "coffee"),
    ("a hot drink on a wooden table", "coffee"),
    ("an astronaut in an orange spacesuit", "astronaut"),
    ("portrait of a woman astronaut", "astronaut"),
    ("NASA astronaut with the American flag", "astronaut"),
    ("a space rocket on the launch pad", "rocket"),
    ("rocket launch site at night", "rocket"),
    ("a motorbike", "motorcycle_left"),
    ("a red motorcycle in a garage", "motorcycle_left"),
    ("galaxies in deep space", "hubble_deep_field"),
    ("a telescope image of stars and galaxies", "hubble_deep_field"),
    ("a man with a camera", "camera"),
    ("photographer with a tripod", "camera"),
    ("black and white photo of a cameraman", "camera"),
    ("a wall clock", "clock"),
    ("a blurry clock", "clock"),
    ("a collection of old coins", "coins"),
    ("ancient silver coins", "coins"),
    ("the surface of the moon", "moon"),
    ("lunar craters", "moon"),
    ("a page of printed text", "page"),
    ("a scanned document", "page"),
    ("a brick wall", "brick"),
    ("brickwork", "brick"),
    ("a patch of grass", "grass"),
    ("close-up of a lawn", "grass"),
    ("gravel", "gravel"),
    ("small stones on the ground", "gravel"),
    ("stained tissue under a microscope", "immunohistochemistry"),
    ("a histology slide", "immunohistochemistry"),
    ("cells under a microscope", "immunohistochemistry"),
    ("a photo of the retina", "retina"),
    ("eye fundus image showing blood vessels", "retina"),
    ("a color wheel", "colorwheel"),
    ("a rainbow colour gradient", "colorwheel"),
    ("a Chinese temple", "china"),
    ("a pagoda on a hill", "china"),
    ("traditional Chinese architecture", "china"),
    ("a flower", "flower"),
    ("an orange dahlia", "flower"),
    ("a blooming flower in a garden", "flower"),
)


def photo_source(package: str, filename: str) -> Path:
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent / filename
    import sklearn

    return Path(sklearn.__file__).parent / "datasets" / "images" / filename


def write_photos(folder: Path) -> dict[str, Path]:
    """Every photo as an RGB PNG named after it; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, (package, filename) in PHOTOS.items():
        with Image.open(photo_source(package, filename)) as im:
            rgb = im.convert("RGB")
        path = folder / f"{name}.png"
        rgb.save(path)
        out[name] = path
    return out


@dataclass
class QueryResult:
    query: str
    expected: str
    offline_ranking: list[str]
    baseline_ranking: list[str]
    previous_ranking: list[str] = field(default_factory=list)

    @property
    def previous_rank(self) -> int:
        return self.previous_ranking.index(self.expected) + 1 if self.expected in self.previous_ranking else 10**6

    @property
    def offline_rank(self) -> int:
        return self.offline_ranking.index(self.expected) + 1 if self.expected in self.offline_ranking else 10**6

    @property
    def baseline_rank(self) -> int:
        return self.baseline_ranking.index(self.expected) + 1


def recall(ranks: Sequence[int], k: int) -> float:
    return sum(r <= k for r in ranks) / len(ranks)


def mrr(ranks: Sequence[int]) -> float:
    return sum(1.0 / r for r in ranks) / len(ranks)


def baseline_sentences(ex: Extractor, paths: dict[str, Path], top: int = 5) -> dict[str, str]:
    """Top ImageNet labels of each photo from the same EfficientNet-Lite0 pass, joined with commas."""
    model = ex.components.image_embedder
    names = labels()
    s = ex.settings
    out = {}
    for name, path in paths.items():
        # Exactly the image the pipeline hands to the models (same reduced decode).
        image = load_image(path, s.max_image_pixels, s.max_file_bytes, ex.components.decode_side()).image
        _, probs = model.forward(model.preprocess([image]))
        out[name] = ", ".join(names[i] for i in np.argsort(-probs[0])[:top])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH ('-': JSON on stdout only)")
    ap.add_argument("--workdir", type=Path,
                    help="keep the photos and the store here (default: <tmp>/imgctx-retrieval-benchmark, removed after)")
    args = ap.parse_args(argv)
    quiet = args.json == "-"

    def say(*parts: object) -> None:
        if not quiet:
            print(*parts, flush=True)

    work = args.workdir or Path(tempfile.gettempdir()) / "imgctx-retrieval-benchmark"
    lock = open(f"{work}.lock", "w")  # held for the whole run
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    try:
        paths = write_photos(work / "photos")
        by_path = {os.path.abspath(p): n for n, p in paths.items()}
        db = work / "db"
        shutil.rmtree(db, ignore_errors=True)
        with Extractor(db, preset="offline") as ex:
            report = ex.process_directory(work / "photos")
            if report.failed or report.processed != len(paths):
                raise RuntimeError(f"indexed {report.processed}/{len(paths)}: {report.failed_files}")
            records = {by_path[r.path]: r for r in ex.list(limit=len(paths))}

            results: list[QueryResult] = []
            for query, expected in QUERIES:
                hits = ex.search(query, limit=len(paths))
                results.append(QueryResult(query, expected, [by_path[h.record.path] for h in hits], []))

            sentences = baseline_sentences(ex, paths)
            text = ex.components.text_embedder
            order = list(sentences)
            docs = text.embed_texts([sentences[n] for n in order])
            queries = text.embed_texts([q for q, _ in QUERIES])
            sims = queries @ docs.T
            for res, row in zip(results, sims, strict=True):
                res.baseline_ranking = [order[j] for j in np.argsort(-row, kind="stable")]
            components = ex.components
        with Extractor(work / "db-previous", preset="offline", annotators=[], tagger=list(components.taggers),
                       image_embedder=components.image_embedder, text_embedder=components.text_embedder,
                       captioner=components.captioner) as previous:
            previous.process_directory(work / "photos")
            for res in results:
                hits = previous.search(res.query, limit=len(paths))
                res.previous_ranking = [by_path[h.record.path] for h in hits]
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
        lock.close()

    ranks = {"offline": [r.offline_rank for r in results], "offline (previous)": [r.previous_rank for r in results],
             "baseline": [r.baseline_rank for r in results]}
    scores: dict[str, dict[str, float]] = {
        m: {"R@1": recall(rs, 1), "R@5": recall(rs, 5), "MRR": mrr(rs)} for m, rs in ranks.items()
    }
    scores["difference"] = {k: scores["offline"][k] - scores["baseline"][k] for k in ("R@1", "R@5", "MRR")}

    say("What each method indexed per photo")
    for name in paths:
        rec = records[name]
        say(f"  {name:<21} offline : {rec.caption}  | objects: {', '.join(rec.objects) or '-'}")
        say(f"  {'':<21} baseline: {sentences[name]}")
    say("")
    w = max(len(q) for q, _ in QUERIES)
    say(f"{'query':<{w}}  {'expected':<20} {'offline top-1':<21}{'rank':>5}  {'baseline top-1':<21}{'rank':>5}")
    for r in results:
        o_ok = "+" if r.offline_rank == 1 else " "
        b_ok = "+" if r.baseline_rank == 1 else " "
        say(f"{r.query:<{w}}  {r.expected:<20} {o_ok}{r.offline_ranking[0]:<20}{r.offline_rank:>5}  "
            f"{b_ok}{r.baseline_ranking[0]:<20}{r.baseline_rank:>5}")
    say("(+ : the top-1 is the expected photo; rank: where the expected photo came, of "
        f"{len(paths)})")
    say("")
    say(f"{'method':<20}{'R@1':>8}{'R@5':>8}{'MRR':>8}   ({len(results)} queries, {len(paths)} photos)")
    for m in ranks:
        say(f"{m:<20}{scores[m]['R@1']:>8.3f}{scores[m]['R@5']:>8.3f}{scores[m]['MRR']:>8.3f}")
    d = scores["difference"]
    say(f"{'offline - baseline':<10}  R@1 {d['R@1']:+.3f}   R@5 {d['R@5']:+.3f}")

    if args.json:
        payload = {
            "queries": len(results), "photos": len(paths), **scores,
            "per_query": [{**asdict(r), "offline_rank": r.offline_rank, "baseline_rank": r.baseline_rank,
                           "previous_rank": r.previous_rank}
                          for r in results],
            "indexed": {n: {"caption": records[n].caption, "objects": list(records[n].objects),
                            "baseline_sentence": sentences[n]} for n in paths},
        }
        text_out = json.dumps(payload, indent=2)
        if args.json == "-":
            print(text_out)
        else:
            Path(args.json).write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
