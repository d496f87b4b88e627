"""Search over HTTP (uvicorn on loopback) against the same searches through the library.

Method
------
- **Store.** A fresh faiss store (SQLite + FAISS) of ``--records`` records (10,000 by default)
  for the chosen preset's models. One real photo is processed through ``Extractor.process`` (so
  the store records the models' vector spaces); the other records are synthetic: a caption of
  3-6 words drawn from a fixed 60-word vocabulary (seeded RNG), its text vector from the
  preset's real text embedder (so text search finds them by their words), a random unit image
  vector, random hashes, written with ``Extractor.store.upsert`` in batches.
- **Queries.** ``--requests`` text queries of 1-3 vocabulary words (seeded), ``limit=10``, the
  same list for every run.
- **library**: ``Extractor.search(query, limit=10)`` on an Extractor opened on that store in the
  benchmark process (models loaded and warmed first), timed per call: (a) one caller, one query
  after another; (b) ``--clients`` threads sharing the query list, each timing its own calls.
- **http**: the server (``python -m imgctx.server``, same preset and store, uvloop/httptools
  when installed) in a child process; ``--clients`` threads, each with its own keep-alive
  ``httpx.Client``, send ``GET /api/v1/images/?query=...&limit=10`` and time each request
  until its JSON is parsed; also one client alone. Every HTTP answer is checked to hold the same
  ids as the library's answer for that query.
- **Reported**: requests per second (requests / wall time of the run) and p50/p99 latency in
  milliseconds; the ratio HTTP p50 / library p50 at the same concurrency is the figure the
  target (HTTP p50 within 2x) applies to, and the throughput ratio with ``--clients``. Library
  threads time each call only while it runs: when a search is mostly Python code (the ``tiny``
  preset), the interpreter lock makes the threads' calls run one after another and their waiting
  is not in the library's p50, whereas the server's queue is in the HTTP p50; with a model that
  releases the lock (``offline``) both sides include it. Everything runs in one command on one machine, so the
  client, the server and the library share its cores: read the ratios, not the absolute
  numbers.

Usage (from the repository root)::

    .venv/bin/python benchmarks/server.py [--records 10000] [--requests 2000] [--clients 8]
        [--preset tiny|offline] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = (
    "red green blue yellow black white orange purple brown grey cat dog bird horse cow sheep car "
    "bus truck bicycle motorbike boat plane train street road river lake sea beach mountain forest "
    "tree flower grass sky cloud sun moon night city house bridge tower church market kitchen table "
    "chair sofa window door lamp book phone cup bottle"
).split()


def build_store(db: Path, preset: str, records: int, seed: int) -> None:
    from imgctx import Extractor, ImageRecord, Settings, StoredVectors
    from imgctx.testing import write_sample_photos

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    photo = write_sample_photos(db.parent / "photo", ["chelsea"])[0]
    with Extractor(settings=Settings.from_values(db_path=db, preset=preset, load_plugins=("imgctx.testing",))) as ex:
        ex.process(photo)
        text_model = ex.components.text_embedder
        image_dim = int(ex.components.image_embedder.dim)
        now = datetime.now(UTC)
        batch: list[Any] = []
        for i in range(records - 1):
            words = rng.sample(VOCAB, rng.randint(3, 6))
            caption = "a photo of " + " ".join(words)
            vec = nrng.standard_normal(image_dim).astype(np.float32)
            record = ImageRecord(
                id=f"synthetic-{i:06d}", path=f"/synthetic/{i:06d}.jpg", filename=f"{i:06d}.jpg",
                size=(640, 480), file_size=100_000 + i, format="JPEG", caption=caption,
                objects=tuple(words[:2]), content_hash=f"{i:064x}", phash=f"{rng.getrandbits(64):016x}",
                dhash=f"{rng.getrandbits(64):016x}", created_at=now, updated_at=now,
            )
            batch.append((record, caption, vec / np.linalg.norm(vec)))
            if len(batch) == 500 or i == records - 2:
                texts = text_model.embed_texts([c for _, c, _ in batch])
                ex.store.upsert([StoredVectors(r, {"image": v, "text": texts[k]})
                                 for k, (r, _, v) in enumerate(batch)])
                batch = []
        assert ex.count() == records, ex.count()


def percentiles(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 3),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


def run_clients(clients: int, queries: Sequence[str], call: Callable[[int, str], Any]) -> dict[str, Any]:
    """``call(client_index, query)`` for every query, spread over ``clients`` threads."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    answers: dict[int, Any] = {}
    barrier = threading.Barrier(clients + 1)

    def worker(c: int) -> None:
        barrier.wait()
        for i in range(c, len(queries), clients):
            t0 = time.perf_counter()
            answers[i] = call(c, queries[i])
            latencies[c].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    flat = [x for lat in latencies for x in lat]
    return {"clients": clients, "requests": len(flat), "requests_per_s": round(len(flat) / wall, 1),
            **percentiles(flat), "answers": answers}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, preset: str, port: int) -> subprocess.Popen[bytes]:
    import httpx

    env = {**os.environ, "IMGCTX_PORT": str(port), "IMGCTX_ALLOWED_ROOTS": str(db.parent),
           "IMGCTX_LOG_LEVEL": "WARNING", "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
    src = Path(__file__).resolve().parent.parent / "src"
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    proc = subprocess.Popen([sys.executable, "-m", "imgctx.server", "--preset", preset, "--db", str(db)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited at start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=2000, help="queries per run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--preset", default="tiny", choices=["tiny", "offline"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--omp-threads", type=int, default=None,
                    help="set OMP_NUM_THREADS (FAISS threads) for the library and the server alike")
    ap.add_argument("--json", help="also write the results as JSON to this file ('-' for stdout)")
    args = ap.parse_args(argv)
    if args.omp_threads is not None:  # before faiss is imported, here and in the server process
        os.environ["OMP_NUM_THREADS"] = str(args.omp_threads)

    import httpx

    from imgctx import Extractor, Settings

    work = Path(tempfile.mkdtemp(prefix="imgctx-server-bench-"))
    proc = None
    try:
        db = work / "db"
        t0 = time.perf_counter()
        build_store(db, args.preset, args.records, args.seed)
        print(f"store: {args.records} records ({args.preset} preset) built in {time.perf_counter() - t0:.1f}s")
        rng = random.Random(args.seed + 1)
        queries = [" ".join(rng.sample(VOCAB, rng.randint(1, 3))) for _ in range(args.requests)]

        port = free_port()
        proc = start_server(db, args.preset, port)
        base = f"http://127.0.0.1:{port}"
        sessions = [httpx.Client(base_url=base, timeout=60) for _ in range(args.clients)]

        def http_search(c: int, q: str) -> list[str]:
            r = sessions[c].get("/api/v1/images/", params={"query": q, "limit": 10})
            r.raise_for_status()
            return [h["id"] for h in r.json()]

        with Extractor(settings=Settings.from_values(db_path=db, preset=args.preset, load_plugins=("imgctx.testing",))) as ex:
            def lib_search(_c: int, q: str) -> list[str]:
                return [h.record.id for h in ex.search(q, limit=10)]

            for q in queries[:50]:  # warm up models, FAISS index, SQLite pages, connections
                lib_search(0, q)
                for c in range(args.clients):
                    http_search(c, q)
            results = {
                "library_1": run_clients(1, queries, lib_search),
                "http_1": run_clients(1, queries, http_search),
                f"library_{args.clients}": run_clients(args.clients, queries, lib_search),
                f"http_{args.clients}": run_clients(args.clients, queries, http_search),
            }
        for s in sessions:
            s.close()
        reference = results["library_1"]["answers"]
        for name, res in results.items():
            answers = res.pop("answers")
            assert answers == reference, f"{name}: answers differ from the library's"

        print(f"\n{args.requests} text searches (limit 10) per run, {os.cpu_count()} CPU cores shared by "
              f"client, server and library; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        print(f"{'run':<12} {'clients':>7} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
        for name, res in results.items():
            print(f"{name:<12} {res['clients']:>7} {res['requests_per_s']:>9.1f} {res['p50_ms']:>9.2f} "
                  f"{res['p99_ms']:>9.2f}")
        n = args.clients
        ratios = {
            "p50_ratio_1_client": round(results["http_1"]["p50_ms"] / results["library_1"]["p50_ms"], 2),
            f"p50_ratio_{n}_clients": round(results[f"http_{n}"]["p50_ms"] / results[f"library_{n}"]["p50_ms"], 2),
            f"throughput_ratio_{n}_clients": round(
                results[f"http_{n}"]["requests_per_s"] / results[f"library_{n}"]["requests_per_s"], 2),
        }
        print("\nHTTP / library:", ", ".join(f"{k} = {v}" for k, v in ratios.items()),
              "(target: p50 within 2x)")
        print(f"(library threads time each call only while it runs: under the interpreter lock the "
              f"{n} threads' pure-Python calls mostly run one after another, so their wait is not in "
              f"the library's p50, while the server's queue is in the HTTP p50)")
        out = {"records": args.records, "preset": args.preset, "requests": args.requests,
               "omp_threads": os.environ.get("OMP_NUM_THREADS"),
               "cpu_count": os.cpu_count(), "results": results, "ratios": ratios}
        if args.json == "-":
            print(json.dumps(out, indent=2))
        elif args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
