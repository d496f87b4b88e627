"""Ray's overhead and scaling: the same files through the single-process pipeline and through
``index_on_ray``, in one command.

Method
------
1. **Files.** ``--images`` distinct real photos: crops of scikit-image's sample photos at
   several offsets and scales, resized to a long side of ``--side`` px, JPEG
   (``imgctx._testkit.write_photo_crops``; the same folder on every run).

2. **Local.** ``Extractor(preset=...)`` with ``torch.set_num_threads(--local-threads)``, every model
   loaded and warmed on one batch (8 files, not counted) before the clock starts;
   ``process_many(paths)`` over the other files into the same fresh faiss store. images/s =
   images / the call's seconds. The pipeline's decode threads run beside the models. Default
   one torch thread: on a machine shared with other jobs, torch's spinning threads made 2
   threads five times slower than 1 here (1.2 against 6.7 images/s); on a quiet machine pass
   ``--local-threads`` equal to ``--cores``.

3. **Ray.** A local Ray cluster started in this process with ``--cores`` logical CPUs (or
   ``--address`` of an existing cluster), then for each actor count in ``--actors``:
   ``index_on_ray(..., actors=n)`` into a fresh faiss store. Each actor holds one CPU (Ray sets
   ``OMP_NUM_THREADS=1`` for it), so ``--actors`` equal to ``--cores`` is the equal-cores
   comparison. Two figures per run, because the actors load their models inside the call:
   *end to end* (the whole call: actor start, model load, decode, models, store writes) and
   *steady*: the rate over the middle half of the run, (images done between the 25th and the
   75th percentile of completion) / (the seconds between them), from the progress callback's
   timestamps, which leaves out the actors' start-up and the tail. Results reach the driver a
   block (two actor batches) at a time, so use enough files for many blocks (``--images`` 400
   or more). The local run's steady rate is measured the same way.
   The driver loads the embedders to learn their dimensions before the clock starts, as it
   must on a real run too.

4. **Figures.** On a machine shared with other jobs, the runs are interleaved (local, then
   Ray at each actor count, ``--rounds`` times) and the best of the rounds is kept for each.
   Ray's overhead at equal cores = 1 - ray images/s / local images/s (steady and
   end to end). Scaling efficiency at n actors = (images/s at n) / (n x images/s at 1 actor),
   steady figures.

``python benchmarks/distributed.py --images 200 --cores 2 --actors 2`` (2-core machine);
``python benchmarks/distributed.py --images 2000 --cores 16 --actors 1,2,4,8`` (16 cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from imgctx import Extractor, index_on_ray, scan_directory
from imgctx._testkit import write_photo_crops


def _middle_rate(stamps: list[float]) -> float:
    """Images per second over the middle half of a run (25th to 75th percentile of completion)."""
    if len(stamps) < 4:
        return float("nan")
    lo, hi = len(stamps) // 4, (3 * len(stamps)) // 4
    span = stamps[hi] - stamps[lo]
    return (hi - lo) / span if span > 0 else float("nan")


def _local(files: list[Path], preset: str, threads: int, db: Path) -> tuple[float, float]:
    import torch

    torch.set_num_threads(threads)
    stamps: list[float] = []
    with Extractor(db, preset=preset) as ex:
        ex.models.preload()
        ex.process_many(files[:8])  # warm-up batch, into the same store; not counted
        rest = files[8:]
        t0 = time.perf_counter()
        report = ex.process_many(rest, progress=lambda p: stamps.append(time.perf_counter()))
        seconds = time.perf_counter() - t0
        assert report.failed == 0, report.failed_files
    return len(rest) / seconds, _middle_rate(stamps)


def _ray(files: list[Path], preset: str, address: str, actors: int, batch: int, db: Path) -> tuple[float, float]:
    stamps: list[float] = []
    with Extractor(db, preset=preset) as ex:
        ex._ready()  # the embedders' dimensions, as the driver needs them; not counted
        t0 = time.perf_counter()
        report = index_on_ray(ex, files, address, actors=actors, actor_batch_size=batch,
                              progress=lambda p: stamps.append(time.perf_counter()))
        seconds = time.perf_counter() - t0
        assert report.failed == 0 and report.processed == len(files), report.failed_files
    return len(files) / seconds, _middle_rate(stamps)


def _best(runs: list[tuple[float, float]]) -> dict[str, float]:
    return {"end_to_end_images_per_s": round(max(r[0] for r in runs), 2),
            "steady_images_per_s": round(max(r[1] for r in runs), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=480)
    ap.add_argument("--side", type=int, default=320)
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--cores", type=int, default=2, help="torch threads locally; logical CPUs of the local Ray cluster")
    ap.add_argument("--local-threads", type=int, default=1, help="torch threads of the local run (1: see the method)")
    ap.add_argument("--actors", default="2", help="comma-separated actor counts")
    ap.add_argument("--batch", type=int, default=16, help="images per model call in an actor")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--address", help="an existing Ray cluster (default: start one here with --cores CPUs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not args.address:
        import os
        import secrets

        # a token of its own, so that Ray writes none into ~/.ray; Ray reads these variables
        # when it is imported, so they are set first
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    import ray

    work = Path(tempfile.mkdtemp(prefix="imgctx-bench-ray-"))
    write_photo_crops(work / "photos", args.images, side=args.side)
    files = scan_directory(work / "photos")
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.cores + 1, include_dashboard=False, log_to_driver=False)  # +1: the read tasks
    counts = [int(a) for a in args.actors.split(",")]
    local_runs: list[tuple[float, float]] = []
    ray_runs: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    for r in range(args.rounds):
        local_runs.append(_local(files, args.preset, args.local_threads, work / f"local-{r}"))
        for n in counts:
            ray_runs[n].append(_ray(files, args.preset, "auto", n, args.batch, work / f"ray-{n}-{r}"))
    ray.shutdown()
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    out: dict[str, object] = {"images": len(files), "cores": args.cores, "preset": args.preset,
                              "local_torch_threads": args.local_threads, "rounds": args.rounds,
                              "local": _best(local_runs)}
    runs = {n: _best(v) for n, v in ray_runs.items()}
    out["ray"] = runs
    local = out["local"]
    if args.cores in runs:
        out["overhead_at_equal_cores"] = {
            k.removesuffix("_images_per_s"): round(1 - runs[args.cores][k] / local[k], 3)  # type: ignore[index]
            for k in ("steady_images_per_s", "end_to_end_images_per_s")
        }
    if 1 in runs:
        one = runs[1]["steady_images_per_s"]
        out["scaling_efficiency"] = {n: round(r["steady_images_per_s"] / (n * one), 3) for n, r in runs.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{len(files)} images ({args.side} px), preset {args.preset}, {args.cores} cores, best of {args.rounds}")
    print(f"local pipeline: {local['steady_images_per_s']} images/s steady, {local['end_to_end_images_per_s']} end to end")  # type: ignore[index]
    for n, r in runs.items():
        print(f"ray, {n} actors: {r['steady_images_per_s']} images/s steady, {r['end_to_end_images_per_s']} end to end")
    for key in ("overhead_at_equal_cores", "scaling_efficiency"):
        if key in out:
            print(f"{key}: {out[key]}")


if __name__ == "__main__":
    main()
