"""Per-backend model speed on CPU at batch sizes 1, 8 and 32, peak memory, and the pipeline.

Method
------
For each preset (``offline``: the real bundled weights; ``standard``: the published weights
cannot be downloaded here, so either tiny models built by ``imgctx.testing`` (the default) or,
with ``--full-size``, the published architectures with random weights (same cost; see
below); pass ``--blip``, ``--clip``, ``--text`` folders to measure real weights), every distinct model of the preset runs in **its own child
process**, started fresh, so that its peak memory is its own:

1. The child builds the preset's ``Extractor`` (memory store), takes the one model, records
   the RSS before loading (libraries imported), loads it and warms it up (a batch of each size).
2. It times the model on ``--images`` images (distinct random crops of scikit-image's sample
   photos, decoded once beforehand to the preset's decode side, as the pipeline hands them
   over) at batch sizes 1, 8 and 32, in ``--repeats`` rounds that cycle through the sizes (so
   drift on a shared machine hits all sizes alike). A model that fills the tagger and the image
   embedder (``analyze``) is timed through ``analyze``; captioners through ``caption``; text
   embedders on each image's text document (``embed_texts``). The figure is the best round;
   images/s = images / seconds. Text embedders are timed on one synthetic caption + tags
   document per image (a caption-like sentence and ten tag words), so that no other model is
   loaded in their process.
3. It reports its peak RSS (VmHWM) and the RSS before loading (torch and the model libraries
   already imported); the difference is roughly the model's weights plus activations at
   batch 32.

Then the whole **pipeline** (``Extractor.process_many`` over the same images written as JPEG
files, a fresh memory store per run, ``batch_size`` = 1, 8, 32) runs in one more child per
preset, timed the same way. The check: per-image time at batch 32 is not worse than at batch 1
(ratio ``t32 / t1`` <= 1.0, printed per backend and for the pipeline; ``--strict`` exits 1 when
the pipeline's is above 1.05, i.e. outside timing noise).

Every comparison is a ratio within one child process (same machine, same moment). Absolute
images/s depend on the machine and on its load. On a machine whose cores are busy with other
work, pass ``--threads 1``: torch's OpenMP threads otherwise spin-wait for each other at every
operator, which costs a fixed ~0.1 s per call and swamps small batches.

Usage (from the repository root)::

    .venv/bin/python benchmarks/models.py [--presets offline,standard] [--images 64]
        [--repeats 3] [--threads N] [--json out.json] [--strict]
        [--blip DIR] [--clip DIR] [--text DIR] [--full-size] [--caption-max-length N]
        [--captioner blip|git] [--git DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

BATCH_SIZES = (1, 8, 32)
MIB = 1024**2


def rss(field: str) -> float:
    """VmRSS or VmHWM (peak) of this process, bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(int(line.split()[1]) * 1024)
    return float("nan")


def write_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` distinct JPEGs: random crops (60-100 % of each side) of the sample photos."""
    from PIL import Image

    from imgctx.testing import SAMPLE_PHOTOS, sample_photo_path

    rng = np.random.default_rng(seed)
    sources = []
    for name in SAMPLE_PHOTOS:
        with Image.open(sample_photo_path(name)) as im:
            sources.append(im.convert("RGB"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        src = sources[k % len(sources)]
        w, h = src.size
        cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        path = folder / f"img{k:03d}.jpg"
        src.crop((x, y, x + cw, y + ch)).save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


# -- full-size random-weight stand-ins (``--full-size``) -------------------------------------------
#
# Speed and memory depend on the architecture, not on the weight values, so where the published
# weights cannot be downloaded the same architectures with random weights give the real cost:
# BLIP base (ViT-B/16 at 384 px + BERT-base decoder), open_clip ViT-B-32, MiniLM-L6 (384-d,
# 6 layers). Random weights never emit an end token, so every caption runs to
# ``IMGCTX_BLIP_MAX_LENGTH`` tokens: an upper bound of real captioning time (real captions stop
# at about 10-15 tokens).


def _synthetic_wordpiece(size: int) -> dict[str, int]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = specials + letters + [f"##{c}" for c in letters]
    words += [f"[unused{i}]" for i in range(size - len(words))]
    return {w: i for i, w in enumerate(words)}


def build_full_size_blip(folder: Path) -> Path:
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    vocab = _synthetic_wordpiece(30524)
    config = BlipConfig(  # Salesforce/blip-image-captioning-base's architecture
        vision_config=dict(image_size=384, patch_size=16, hidden_size=768, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=3072),
        text_config=dict(vocab_size=30524, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, encoder_hidden_size=768, max_position_embeddings=512,
                         bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"], pad_token_id=0, eos_token_id=vocab["[SEP]"]),
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).eval().save_pretrained(folder)
    BlipProcessor(BlipImageProcessor(size={"height": 384, "width": 384}),
                  BertTokenizer(vocab=vocab, bos_token="[DEC]")).save_pretrained(folder)
    return folder


def build_full_size_git(folder: Path) -> Path:
    """microsoft/git-base-coco's architecture (CLIP ViT-B/16 at 224 px, a 6-layer decoder over
    the image tokens and the text, BERT's vocabulary) with random weights."""
    import torch
    from transformers import BertTokenizer, CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    vocab = _synthetic_wordpiece(30522)
    config = GitConfig(
        vision_config=dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                           num_attention_heads=12, intermediate_size=3072),
        vocab_size=30522, hidden_size=768, num_hidden_layers=6, num_attention_heads=12, intermediate_size=3072,
        max_position_embeddings=1024, bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"], pad_token_id=0,
    )
    torch.manual_seed(0)
    GitForCausalLM(config).eval().save_pretrained(folder)
    GitProcessor(CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
                 BertTokenizer(vocab=vocab)).save_pretrained(folder)
    return folder


def build_full_size_open_clip(folder: Path) -> Path:
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    cfg = open_clip.get_model_config("ViT-B-32")
    torch.manual_seed(0)
    torch.save(open_clip.CLIP(**cfg).state_dict(), folder / "open_clip_pytorch_model.bin")
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    return folder


def build_full_size_minilm(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    try:
        import sentence_transformers.sentence_transformer.modules as st_models
    except ImportError:
        import sentence_transformers.models as st_models  # type: ignore[no-redef]
    from sentence_transformers import SentenceTransformer

    hf = folder.parent / f"{folder.name}-hf"
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536)).save_pretrained(hf)
    BertTokenizer(vocab=_synthetic_wordpiece(30522)).save_pretrained(hf)
    modules = [st_models.Transformer(str(hf), max_seq_length=256), st_models.Pooling(384, "mean"), st_models.Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def settings_for(preset: str, db: Path, args: argparse.Namespace, batch_size: int = 16) -> Any:
    from imgctx import Settings

    plugins: dict[str, dict[str, Any]] = {"torch": {"threads": args.threads}, "blip": {}, "git": {}}
    if args.caption_max_length:
        plugins["blip"]["max_length"] = plugins["git"]["max_length"] = args.caption_max_length
    captioner = None
    if preset == "standard":
        plugins["blip"]["local_model_path"] = Path(args.blip)
        plugins["clip"] = {"local_model_path": Path(args.clip)}
        plugins["sentence"] = {"model": str(args.text)}
        if args.captioner == "git":
            plugins["git"]["local_model_path"] = Path(args.git)
            captioner = "git"
    return Settings.from_values(db_path=db, preset=preset, store="memory", batch_size=batch_size,
                                plugin_settings=plugins, captioner=captioner)


def roles_of(components: Any) -> dict[str, list[str]]:
    """Distinct model objects of a preset -> the roles each fills."""
    out: dict[int, tuple[Any, list[str]]] = {}
    for role, model in components.by_role().items():
        out.setdefault(id(model), (model, []))[1].append(role)
    return {f"{m.name}": roles for m, roles in out.values()}


def time_rounds(run: Any, items: list[Any], repeats: int) -> dict[int, dict[str, float]]:
    """Best and median seconds per image at each batch size, over ``repeats`` rounds."""
    times: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    for _ in range(repeats):
        for b in BATCH_SIZES:
            t0 = time.perf_counter()
            for start in range(0, len(items), b):
                run(items[start:start + b])
            times[b].append((time.perf_counter() - t0) / len(items))
    return {b: {"best_s_per_image": min(ts), "median_s_per_image": float(np.median(ts))} for b, ts in times.items()}


def text_documents(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct caption + tags documents as the pipeline embeds them: a caption-like
    sentence, then about ten tag words from the zero-shot vocabulary. Built without running the
    other models, so the text embedder's peak memory is its own."""
    from imgctx._backends.vocabulary import load_vocabulary

    rng = np.random.default_rng(seed)
    nouns = [e.noun for e in load_vocabulary()]
    docs = []
    for _ in range(n):
        a, b, c = rng.choice(nouns, 3, replace=False)
        tags = ", ".join(rng.choice(nouns, 10, replace=False))
        docs.append(f"a {a} next to a {b} on a {c} in the afternoon light. {tags}")
    return docs


def import_libraries(preset: str) -> None:
    """Import what the preset's models need, so that the RSS before loading includes them."""
    import importlib

    names = ["torch", "sentence_transformers"]
    names += ["transformers", "open_clip"] if preset == "standard" else ["efficientnet_lite_pytorch"]
    for name in names:
        importlib.import_module(name)


def child_backend(args: argparse.Namespace) -> dict[str, Any]:
    from imgctx import Extractor
    from imgctx._images import load_image

    work = Path(args.workdir)
    paths = sorted((work / "images").glob("*.jpg"))
    with Extractor(settings=settings_for(args.preset, work / "db-child", args)) as ex:
        comps = ex.components
        model = next(m for m in comps.by_role().values() if m.name == args.backend)
        roles = [r for r, m in comps.by_role().items() if m is model]
        side = comps.decode_side()
        import_libraries(args.preset)
        images = [load_image(p, 10**9, 10**9, side).image for p in paths]
        rss_before = rss("VmRSS")
        t0 = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - t0
        if hasattr(model, "analyze") and any(r.startswith("tagger") for r in roles) and "image_embedder" in roles:
            run, kind = model.analyze, "analyze (tags + image vectors)"
            items: list[Any] = images
        elif "captioner" in roles:
            run, kind, items = model.caption, "caption", images
        elif "text_embedder" in roles:
            run, kind, items = model.embed_texts, "embed_texts (caption + tags documents)", text_documents(len(images))
        elif "image_embedder" in roles:
            run, kind, items = model.embed_images, "embed_images", images
        elif any(r.startswith("annotator") for r in roles):  # photo annotators read the file too
            def run(pairs: list[Any]) -> Any:
                return model.annotate([image for image, _ in pairs], [path for _, path in pairs])
            kind, items = "annotate", list(zip(images, [str(p) for p in paths], strict=True))
        else:
            run, kind, items = model.tag, "tag", images
        for b in BATCH_SIZES:  # warm-up
            run(items[:b])
        timing = time_rounds(run, items, args.repeats)
    return {"preset": args.preset, "backend": args.backend, "roles": roles, "call": kind,
            "load_s": load_s, "rss_before_load_mib": rss_before / MIB, "peak_rss_mib": rss("VmHWM") / MIB,
            "timing": {str(k): v for k, v in timing.items()}}


def child_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from imgctx import Extractor

    work = Path(args.workdir)
    paths = sorted((work / "images").glob("*.jpg"))
    ex = Extractor(settings=settings_for(args.preset, work / "db-pipeline", args))
    ex.models.preload()
    base = ex.settings

    def run(b: int, files: list[Path]) -> float:
        ex.settings = base.with_overrides(batch_size=b)  # the same model instances for every size
        ex.store.delete([r.id for r in ex.list(limit=10**6)])  # a fresh (memory) store each run
        t0 = time.perf_counter()
        report = ex.process_many(files)
        elapsed = time.perf_counter() - t0
        assert report.processed == len(files) and report.failed == 0, report.failed_files
        return elapsed / len(files)

    for b in BATCH_SIZES:  # warm-up
        run(b, paths[:b])
    times: dict[int, list[float]] = {b: [] for b in BATCH_SIZES}
    for _ in range(args.repeats):
        for b in BATCH_SIZES:
            times[b].append(run(b, paths))
    ex.close()
    timing = {str(b): {"best_s_per_image": min(ts), "median_s_per_image": float(np.median(ts))} for b, ts in times.items()}
    return {"preset": args.preset, "backend": "pipeline (process_many)", "roles": ["all"],
            "call": "process_many", "load_s": float("nan"), "rss_before_load_mib": float("nan"),
            "peak_rss_mib": rss("VmHWM") / MIB, "timing": timing}


def run_child(args: argparse.Namespace, preset: str, backend: str | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--workdir", args.workdir, "--preset", preset,
           "--repeats", str(args.repeats), "--blip", str(args.blip), "--clip", str(args.clip), "--text", str(args.text),
           "--images", str(args.images)]
    if args.caption_max_length:
        cmd += ["--caption-max-length", str(args.caption_max_length)]
    if args.captioner == "git":
        cmd += ["--captioner", "git", "--git", str(args.git)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if backend is not None:
        cmd += ["--backend", backend]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {preset}/{backend} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="offline,standard")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--strict", action="store_true")
    ap.add_argument("--blip", default=None)
    ap.add_argument("--clip", default=None)
    ap.add_argument("--text", default=None)
    ap.add_argument("--full-size", action="store_true",
                    help="standard preset: the real architectures with random weights instead of tiny models")
    ap.add_argument("--caption-max-length", type=int, default=None)
    ap.add_argument("--captioner", choices=("blip", "git"), default="blip",
                    help="the standard preset's captioner (git: IMGCTX_CAPTIONER=git)")
    ap.add_argument("--git", default=None, help="folder of a GIT captioning model (with --captioner git)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--backend", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        result = child_backend(args) if args.backend else child_pipeline(args)
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="imgctx-models-bench-") as tmp:
        args.workdir = args.workdir or tmp
        work = Path(args.workdir)
        write_images(work / "images", args.images)
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
        weights = {"offline": "real bundled weights"}
        if "standard" in presets:
            from imgctx import testing

            if args.full_size and not (args.blip and args.clip and args.text):
                weights["standard"] = (f"FULL-SIZE architectures with RANDOM weights ({'GIT' if args.captioner == 'git' else 'BLIP'}"
                                       " base, open_clip ViT-B-32, MiniLM-L6): real cost, captions run to max length")
                args.blip = args.blip or str(build_full_size_blip(work / "blip-base"))
                args.clip = args.clip or str(build_full_size_open_clip(work / "vit-b-32"))
                args.text = args.text or str(build_full_size_minilm(work / "minilm-l6"))
                if args.captioner == "git":
                    args.git = args.git or str(build_full_size_git(work / "git-base"))
            elif not (args.blip and args.clip and args.text):
                weights["standard"] = "TINY random-weight models (real classes, a few thousand parameters)"
                args.blip = args.blip or str(testing.build_tiny_blip(work / "tiny-blip"))
                args.clip = args.clip or str(testing.build_tiny_open_clip(work / "tiny-open-clip"))
                args.text = args.text or str(testing.build_tiny_sentence_transformer(work / "tiny-st"))
                if args.captioner == "git":
                    args.git = args.git or str(testing.build_tiny_git(work / "tiny-git"))
            else:
                weights["standard"] = f"weights from {args.blip}, {args.clip}, {args.text}"
        results = []
        for preset in presets:
            from imgctx import Extractor

            with Extractor(settings=settings_for(preset, work / "db-names", args)) as ex:
                backends = roles_of(ex.components)
            for backend in backends:
                results.append(run_child(args, preset, backend))
            results.append(run_child(args, preset, None))

        print(f"{args.images} images, {args.repeats} rounds, torch threads: {args.threads or 'default'}; "
              f"CPU ({os.cpu_count()} cores); best round (median in brackets)")
        header = f"{'preset':9} {'backend':38} {'roles':34}" + "".join(f" {'b=' + str(b) + ' img/s':>18}" for b in BATCH_SIZES)
        print(header + f" {'t32/t1':>7} {'peak MiB':>9} {'before':>7}")
        worst_pipeline = 0.0
        for r in results:
            t = r["timing"]
            cells = "".join(
                f" {1 / t[str(b)]['best_s_per_image']:>8.1f} ({1 / t[str(b)]['median_s_per_image']:>6.1f})"
                for b in BATCH_SIZES)
            ratio = t["32"]["best_s_per_image"] / t["1"]["best_s_per_image"]
            r["t32_over_t1"] = ratio
            if r["backend"].startswith("pipeline"):
                worst_pipeline = max(worst_pipeline, ratio)
            before = r["rss_before_load_mib"]
            print(f"{r['preset']:9} {r['backend'][:38]:38} {'+'.join(r['roles'])[:34]:34}{cells} {ratio:>7.2f} "
                  f"{r['peak_rss_mib']:>9.0f} {'' if before != before else f'{before:.0f}':>7}")
        for preset in presets:
            print(f"{preset}: {weights[preset]}")
        ok = worst_pipeline <= 1.05
        print(f"pipeline per-image time at batch 32 vs batch 1: worst ratio {worst_pipeline:.2f} "
              f"({'OK: not slower' if ok else 'SLOWER at batch 32'})")
        if args.json:
            Path(args.json).write_text(json.dumps({"weights": weights, "results": results}, indent=2))
        return 1 if (args.strict and not ok) else 0


if __name__ == "__main__":
    sys.exit(main())
