"""Soak test: many clients doing mixed reads and writes against one server for a bounded time.

Method
------
- **Server.** ``python -m imgctx.server`` in a child process on loopback (``--preset``, a fresh
  faiss store, ``OMP_NUM_THREADS=1``), its allowed root a temporary folder with the sample
  photos (``photos``, processed before the clients start) and ``--folders`` small folders of
  12 generated PNGs each for directory tasks.
- **Clients.** ``--clients`` threads (8 by default), each with its own keep-alive
  ``httpx.Client`` and a seeded RNG, repeat until ``--duration`` seconds have passed, choosing
  each time (weights in ``MIX``): a text search, a list page, one image's info, an upload
  (processed at once, into the client's own folder), a delete of the client's oldest upload with
  its file, a background directory task (``process-async`` with ``force_reprocess``, polled to
  its end, at most 60 s), or WebSocket churn (connect to ``/ws``, ``connected``, ping/pong,
  subscribe, close). Every answer is checked: an unexpected status, a failed task, a wrong
  WebSocket reply or an exception counts as an error.
- **Reported.** Operations and HTTP requests, errors, p50/p99 latency of the operations (a task
  counts from its start to its end), per kind too, and the server's resident memory (RSS, by
  psutil) after start-up, after a warm-up (the first ``--warmup`` seconds of load), and at the
  end; the drift is end against warm-up. The target is 0 errors and a drift under 5%.

Usage (from the repository root)::

    .venv/bin/python benchmarks/soak.py [--duration 120] [--clients 8] [--warmup 20]
        [--preset tiny] [--json out.json]
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
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

MIX = {"search": 30, "list": 12, "info": 14, "upload": 12, "delete": 12, "task": 5, "websocket": 15}
WORDS = ("red", "dark", "blue", "cat", "rocket", "coffee", "colour", "bright", "green", "photo")
API = "/api/v1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(base: Path, folders: int) -> Path:
    from PIL import Image

    from imgctx.testing import SAMPLE_PHOTOS, write_sample_photos

    root = base / "root"
    (root / "photos").mkdir(parents=True)
    write_sample_photos(root / "photos", SAMPLE_PHOTOS)
    for k in range(folders):
        folder = root / "folders" / f"f{k}"
        folder.mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (64 + i, 48), ((37 * i + 11 * k) % 256, (90 + 7 * i) % 256, 140)).save(folder / f"{i}.png")
    return root


class Client(threading.Thread):
    """One client: mixed operations until the deadline; records latency and errors."""

    def __init__(self, cid: int, base: str, photos: list[Path], folders: int, deadline: float,
                 ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.cid = cid
        self.base = base
        self.photos = [p.read_bytes() for p in photos]
        self.folders = folders
        self.deadline = deadline
        self.ids = ids
        self.rng = random.Random(cid)
        self.uploaded: list[str] = []
        self.samples: list[tuple[float, str, float]] = []  # (when, kind, seconds)
        self.errors: Counter[str] = Counter()
        self.error_examples: list[str] = []
        self.requests = 0
        self.n = 0

    def _fail(self, kind: str, why: str) -> None:
        self.errors[kind] += 1
        if len(self.error_examples) < 5:
            self.error_examples.append(f"{kind}: {why[:300]}")

    def run(self) -> None:
        import httpx

        kinds = list(MIX)
        weights = [MIX[k] for k in kinds]
        with httpx.Client(base_url=self.base, timeout=120) as http:
            while time.monotonic() < self.deadline:
                kind = self.rng.choices(kinds, weights)[0]
                if kind == "delete" and not self.uploaded:
                    kind = "upload"
                start = time.perf_counter()
                try:
                    ok, why = getattr(self, f"op_{kind}")(http)
                except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                self.samples.append((time.monotonic(), kind, time.perf_counter() - start))
                if not ok:
                    self._fail(kind, why)

    def _get(self, http: Any, url: str, **params: Any) -> tuple[bool, str]:
        self.requests += 1
        r = http.get(url, params=params)
        return r.status_code == 200, f"{r.status_code} {r.text[:200]}"

    def op_search(self, http: Any) -> tuple[bool, str]:
        query = " ".join(self.rng.sample(WORDS, self.rng.randint(1, 3)))
        return self._get(http, f"{API}/images/", query=query, limit=10)

    def op_list(self, http: Any) -> tuple[bool, str]:
        return self._get(http, f"{API}/images/", limit=20, offset=self.rng.randint(0, 5))

    def op_info(self, http: Any) -> tuple[bool, str]:
        return self._get(http, f"{API}/images/info/{self.rng.choice(self.ids)}")

    def op_upload(self, http: Any) -> tuple[bool, str]:
        self.n += 1
        self.requests += 1
        data = self.rng.choice(self.photos)
        r = http.post(f"{API}/images/upload", files={"file": (f"c{self.cid}-{self.n}.jpg", data, "image/jpeg")},
                      data={"upload_dir": f"soak/c{self.cid}", "process_immediately": "true"})
        if r.status_code != 201:
            return False, f"{r.status_code} {r.text[:200]}"
        self.uploaded.append(r.json()["image_id"])
        return True, ""

    def op_delete(self, http: Any) -> tuple[bool, str]:
        self.requests += 1
        image_id = self.uploaded.pop(0)
        r = http.delete(f"{API}/images/{image_id}", params={"delete_file": "true"})
        ok = r.status_code == 200 and r.json().get("file_deleted") is True
        return ok, f"{r.status_code} {r.text[:200]}"

    def op_task(self, http: Any) -> tuple[bool, str]:
        self.requests += 1
        folder = f"folders/f{self.rng.randrange(self.folders)}"
        r = http.post(f"{API}/directories/process-async", json={"directory_path": folder, "force_reprocess": True})
        if r.status_code != 200:
            return False, f"{r.status_code} {r.text[:200]}"
        task_id = r.json()["task_id"]
        until = time.monotonic() + 60
        while time.monotonic() < until:
            self.requests += 1
            task = http.get(f"{API}/directories/task/{task_id}").json()
            if task["status"] == "completed":
                return True, ""
            if task["status"] in ("failed", "interrupted"):
                return False, f"task {task['status']}: {task.get('error')}"
            time.sleep(0.1)
        return False, "task did not end within 60 s"

    def op_websocket(self, http: Any) -> tuple[bool, str]:
        from websockets.sync.client import connect

        self.requests += 1
        url = self.base.replace("http://", "ws://") + "/ws"
        with connect(url, open_timeout=30, close_timeout=10) as ws:
            if json.loads(ws.recv(timeout=30))["type"] != "connected":
                return False, "no connected message"
            ws.send(json.dumps({"type": "ping"}))
            reply = self._next_reply(ws)
            if reply.get("type") != "pong":
                return False, f"ping answered with {reply}"
            ws.send(json.dumps({"type": "subscribe", "channel": "images"}))
            reply = self._next_reply(ws)
            if reply.get("type") != "subscribed":
                return False, f"subscribe answered with {reply}"
        return True, ""

    @staticmethod
    def _next_reply(ws: Any) -> dict[str, Any]:
        """The next reply that is not a broadcast event (bounded: 100 messages)."""
        for _ in range(100):
            message = json.loads(ws.recv(timeout=30))
            if message.get("type") not in ("image_processed", "image_deleted", "directory_processed"):
                return message
        return {"type": "none within 100 messages"}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load (after start-up)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=20.0, help="seconds of load before the 'warm' RSS")
    ap.add_argument("--folders", type=int, default=4)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import httpx
    import psutil

    base_dir = Path(tempfile.mkdtemp(prefix="imgctx-soak-"))
    proc = None
    try:
        root = _prepare(base_dir, args.folders)
        port = _free_port()
        env = {**os.environ, "IMGCTX_ALLOWED_ROOTS": str(root), "IMGCTX_PORT": str(port),
               "OMP_NUM_THREADS": "1", "IMGCTX_LOG_LEVEL": "WARNING", "IMGCTX_LOAD_PLUGINS": "imgctx.testing"}
        proc = subprocess.Popen([sys.executable, "-m", "imgctx.server", "--preset", args.preset,
                                 "--db", str(base_dir / "db")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        until = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > until:
                raise SystemExit(f"the server did not start: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}{API}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.post(f"{base}{API}/directories/process", json={"directory_path": "photos"}, timeout=300)
        r.raise_for_status()
        ids = r.json()["processed_ids"]
        server = psutil.Process(proc.pid)
        rss_start = server.memory_info().rss
        start = time.monotonic()
        deadline = start + args.duration
        photos = sorted((root / "photos").iterdir())
        clients = [Client(c, base, photos, args.folders, deadline, ids) for c in range(args.clients)]
        for c in clients:
            c.start()
        time.sleep(min(args.warmup, args.duration))
        rss_warm = server.memory_info().rss
        for c in clients:
            c.join(timeout=args.duration + 180)
        hung = sum(c.is_alive() for c in clients)
        wall = time.monotonic() - start
        rss_end = server.memory_info().rss
        stats = httpx.get(f"{base}/ws/stats", timeout=30).json()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base_dir, ignore_errors=True)

    by_kind: dict[str, list[float]] = defaultdict(list)
    for c in clients:
        for _, kind, seconds in c.samples:
            by_kind[kind].append(seconds)
    every = [s for values in by_kind.values() for s in values]
    errors: Counter[str] = Counter()
    for c in clients:
        errors.update(c.errors)
    result: dict[str, Any] = {
        "clients": args.clients, "duration_s": round(wall, 1), "preset": args.preset,
        "operations": len(every), "http_requests": sum(c.requests for c in clients),
        "errors": sum(errors.values()), "errors_by_kind": dict(errors), "clients_hung": hung,
        "ops_per_s": round(len(every) / wall, 1),
        "p50_ms": round(1000 * statistics.median(every), 2) if every else 0.0,
        "p99_ms": round(1000 * _percentile(every, 0.99), 2),
        "kinds": {k: {"n": len(v), "p50_ms": round(1000 * statistics.median(v), 2),
                      "p99_ms": round(1000 * _percentile(v, 0.99), 2)} for k, v in sorted(by_kind.items())},
        "rss_mib": {"start": round(rss_start / 2**20, 1), "warm": round(rss_warm / 2**20, 1),
                    "end": round(rss_end / 2**20, 1)},
        "rss_drift_pct": round(100 * (rss_end - rss_warm) / rss_warm, 2),
        "websocket_total_connections": stats.get("total_connections"),
        "error_examples": [e for c in clients for e in c.error_examples][:10],
    }
    print(f"{result['clients']} clients, {result['duration_s']} s, preset {args.preset}")
    print(f"operations {result['operations']} ({result['ops_per_s']}/s), HTTP requests and WebSocket "
          f"sessions {result['http_requests']}, errors {result['errors']}, clients hung {hung}")
    print(f"latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    for kind, k in result["kinds"].items():
        print(f"  {kind:10} n={k['n']:6}  p50 {k['p50_ms']:8.2f} ms  p99 {k['p99_ms']:8.2f} ms")
    rss = result["rss_mib"]
    print(f"server RSS: start {rss['start']} MiB, after warm-up {rss['warm']} MiB, end {rss['end']} MiB "
          f"(drift {result['rss_drift_pct']}%)")
    for example in result["error_examples"]:
        print(f"  error: {example}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
