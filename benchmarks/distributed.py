"""Ray's overhead and scaling: the same files through the single-process pipeline and through
``index_on_ray``, in one command.

Method
------
1. **Files.** ``--images`` distinct real photos: crops of scikit-image's sample photos at
   several offsets and scales, resized to a long side of ``--side`` px, JPEG
   (``imgctx._testkit.write_photo_crops``; the same folder on every run).

2. **Local.** ``Extractor(preset=...)`` with ``torch.set_num_threads(t)``, every model
   loaded and warmed on one batch (8 files, not counted) before the clock starts;
   ``process_many(paths)`` over the other files into the same fresh faiss store. images/s =
   images / the call's seconds. Run twice, t = ``--cores`` and t = 1: on a machine shared with
   other jobs, torch's spinning threads can make t = cores several times slower than t = 1.
   The better of the two is the baseline (the comparison least favourable to Ray).

3. **Ray.** A local Ray cluster started in this process with ``--cores`` logical CPUs (or
   ``--address`` of an existing cluster), then for each actor count in ``--actors``:
   ``index_on_ray(..., actors=n)`` into a fresh faiss store. Each actor holds one CPU (Ray sets
   ``OMP_NUM_THREADS=1`` for it), so ``--actors`` equal to ``--cores`` is the equal-cores
   comparison. Two figures per run, because the actors load their models inside the call:
   *end to end* (the whole call: actor start, model load, decode, models, store writes, over
   all the files) and *steady*, the marginal rate that a long run approaches once the actors
   are up: the call is also run on the first quarter of the files (a fresh store), and
   steady = (files - quarter) / (seconds for all - seconds for the quarter), which cancels the
   fixed start-up cost.
   The driver loads the embedders to learn their dimensions before the clock starts, as it
   must on a real run too.

4. **Figures.** Ray's overhead at equal cores = 1 - ray images/s / local images/s (steady and
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


def _local(files: list[Path], preset: str, threads: int, db: Path) -> float:
    import torch

    torch.set_num_threads(threads)
    with Extractor(db, preset=preset) as ex:
        ex.models.preload()
        ex.process_many(files[:8])  # warm-up batch, into the same store; not counted
        warm = {str(p) for p in files[:8]}
        rest = [p for p in files if str(p) not in warm]
        t0 = time.perf_counter()
        report = ex.process_many(rest)
        seconds = time.perf_counter() - t0
        assert report.failed == 0, report.failed_files
    return len(rest) / seconds


def _ray_seconds(files: list[Path], preset: str, address: str, actors: int, batch: int, db: Path) -> float:
    with Extractor(db, preset=preset) as ex:
        ex._ready()  # the embedders' dimensions, as the driver needs them; not counted
        t0 = time.perf_counter()
        report = index_on_ray(ex, files, address, actors=actors, actor_batch_size=batch)
        seconds = time.perf_counter() - t0
        assert report.failed == 0 and report.processed == len(files), report.failed_files
    return seconds


def _ray(files: list[Path], preset: str, address: str, actors: int, batch: int, db: Path) -> tuple[float, float]:
    quarter = files[: max(1, len(files) // 4)]
    t_quarter = _ray_seconds(quarter, preset, address, actors, batch, db / "quarter")
    t_all = _ray_seconds(files, preset, address, actors, batch, db / "all")
    steady = (len(files) - len(quarter)) / (t_all - t_quarter) if t_all > t_quarter else float("nan")
    return len(files) / t_all, steady


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--side", type=int, default=640)
    ap.add_argument("--preset", default="offline")
    ap.add_argument("--cores", type=int, default=2, help="torch threads locally; logical CPUs of the local Ray cluster")
    ap.add_argument("--actors", default="2", help="comma-separated actor counts")
    ap.add_argument("--batch", type=int, default=16, help="images per model call in an actor")
    ap.add_argument("--address", help="an existing Ray cluster (default: start one here with --cores CPUs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="imgctx-bench-ray-"))
    write_photo_crops(work / "photos", args.images, side=args.side)
    files = scan_directory(work / "photos")
    out: dict[str, object] = {"images": len(files), "cores": args.cores, "preset": args.preset}
    local_runs = {t: round(_local(files, args.preset, t, work / f"local-{t}"), 2) for t in sorted({args.cores, 1})}
    out["local_images_per_s_by_torch_threads"] = local_runs
    out["local_images_per_s"] = max(local_runs.values())
    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.cores + 1, include_dashboard=False, log_to_driver=False)  # +1: the read tasks
    runs = {}
    for n in [int(a) for a in args.actors.split(",")]:
        e2e, steady = _ray(files, args.preset, "auto", n, args.batch, work / f"ray-{n}")
        runs[n] = {"end_to_end_images_per_s": round(e2e, 2), "steady_images_per_s": round(steady, 2)}
    ray.shutdown()
    out["ray"] = runs
    local = out["local_images_per_s"]
    if args.cores in runs:
        r = runs[args.cores]
        out["overhead_at_equal_cores"] = {
            "steady": round(1 - r["steady_images_per_s"] / local, 3),  # type: ignore[operator]
            "end_to_end": round(1 - r["end_to_end_images_per_s"] / local, 3),  # type: ignore[operator]
        }
    if 1 in runs:
        one = runs[1]["steady_images_per_s"]
        out["scaling_efficiency"] = {n: round(r["steady_images_per_s"] / (n * one), 3) for n, r in runs.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{len(files)} images, preset {args.preset}, {args.cores} cores")
    print(f"local pipeline: {local} images/s (by torch threads: {local_runs})")
    for n, r in runs.items():
        print(f"ray, {n} actors: {r['steady_images_per_s']} images/s steady, {r['end_to_end_images_per_s']} end to end")
    for key in ("overhead_at_equal_cores", "scaling_efficiency"):
        if key in out:
            print(f"{key}: {out[key]}")


if __name__ == "__main__":
    main()
