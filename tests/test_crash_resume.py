"""A run killed with SIGKILL at an arbitrary moment, then started again, finishes the job.

Each case runs a real ingest in a child process over the real ``faiss`` store (SQLite + FAISS),
kills it with SIGKILL at a chosen moment, checks that the store opens cleanly and is consistent,
then runs the same job to completion and once more (everything skipped as unchanged).
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from imgctx import Extractor
from imgctx.testing import TinyImageEmbedder, TinyTextEmbedder, settings_for_tests

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
pytest.importorskip("faiss", reason="the faiss store needs the offline extra")

N_IMAGES = 40
BATCH_SIZE = 4
COLLECTION = "image_contexts"

HELPER = r'''
"""Index a folder with the tiny models and the faiss store; print the report as JSON."""

import json
import os
import sys
from pathlib import Path

from imgctx import Extractor
from imgctx.testing import TinyImageEmbedder, settings_for_tests


class AnnouncingEmbedder(TinyImageEmbedder):
    """tiny-image (same name and vectors), slowed down, writing a line before each batch."""

    def __init__(self, delay, marker):
        super().__init__(delay=delay)
        self.marker = marker

    def embed_images(self, images):
        fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            os.write(fd, f"{len(images)}\n".encode())
        finally:
            os.close(fd)
        return super().embed_images(images)


def main():
    db, folder, delay, marker, limit = sys.argv[1:6]
    paths = sorted(p for p in Path(folder).iterdir() if p.is_file())
    if int(limit) >= 0:
        paths = paths[: int(limit)]
    settings = settings_for_tests(db, preset="tiny", batch_size=BATCH_SIZE)
    with Extractor(settings=settings, image_embedder=AnnouncingEmbedder(float(delay), marker)) as ex:
        report = ex.process_many(paths)
    print(json.dumps({
        "total": report.total_files, "processed": report.processed, "skipped": report.skipped,
        "failed": report.failed, "failed_files": [list(f) for f in report.failed_files],
    }))


main()
'''.replace("BATCH_SIZE", str(BATCH_SIZE))


# -- images -------------------------------------------------------------------------------------


def _make_image(rng: np.random.Generator, k: int) -> np.ndarray:
    h, w = int(rng.integers(24, 56)), int(rng.integers(24, 56))
    kind = k % 4
    if kind == 0:  # noise
        arr = rng.integers(0, 256, size=(h, w, 3))
    elif kind == 1:  # solid colour with a random rectangle
        arr = np.empty((h, w, 3))
        arr[:] = rng.integers(0, 256, size=3)
        y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        arr[y: y + h // 3, x: x + w // 3] = rng.integers(0, 256, size=3)
    elif kind == 2:  # gradient between two colours
        a, b = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        t = np.linspace(0, 1, w)[None, :, None]
        arr = np.broadcast_to(a * (1 - t) + b * t, (h, w, 3))
    else:  # stripes
        a, b = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
        period = int(rng.integers(2, 8))
        rows = (np.arange(h) // period) % 2
        arr = np.where(rows[:, None, None] == 0, a, b) * np.ones((h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~40 small, varied images (PNG and JPEG), every file with different bytes."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("crash-images")
    rng = np.random.default_rng(20240601)
    for k in range(N_IMAGES):
        img = Image.fromarray(_make_image(rng, k), "RGB")
        if k % 5 == 4:
            img.save(folder / f"img_{k:03d}.jpg", "JPEG", quality=90)
        else:
            img.save(folder / f"img_{k:03d}.png", "PNG")
    files = sorted(folder.iterdir())
    assert len(files) == N_IMAGES
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in files}) == N_IMAGES
    return folder


# -- helpers ------------------------------------------------------------------------------------


class Job:
    """The helper script, a store folder and the files it indexes."""

    def __init__(self, root: Path, image_dir: Path) -> None:
        self.root = root
        self.db = root / "db"
        self.db_file = self.db / f"{COLLECTION}.sqlite3"
        self.image_dir = image_dir
        self.files = sorted(p.absolute() for p in image_dir.iterdir())
        self.script = root / "ingest_helper.py"
        self.script.write_text(HELPER)
        self.runs = 0

    def start(self, delay: float, limit: int = -1) -> tuple[subprocess.Popen[bytes], Path, Path]:
        self.runs += 1
        marker = self.root / f"batches-{self.runs}.txt"
        log = self.root / f"run-{self.runs}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, str(self.script), str(self.db), str(self.image_dir), str(delay),
                 str(marker), str(limit)],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.root,
            )
        return proc, marker, log

    def run(self, delay: float = 0.0, limit: int = -1) -> dict[str, Any]:
        proc, _, log = self.start(delay, limit)
        try:
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text()
        assert rc == 0, text
        return json.loads(text.strip().splitlines()[-1])

    def committed(self) -> int | None:
        """Records committed so far, read through a read-only connection (None: not yet)."""
        if not self.db_file.exists():
            return None
        try:
            conn = sqlite3.connect(f"file:{self.db_file}?mode=ro", uri=True, timeout=0.5)
            try:
                return int(conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return None

    def rows(self) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db_file)
        try:
            return conn.execute(
                "SELECT id, path, content_hash, created_at, updated_at FROM records ORDER BY rowid"
            ).fetchall()
        finally:
            conn.close()


def _batches_started(marker: Path) -> int:
    try:
        return len(marker.read_text().splitlines())
    except FileNotFoundError:
        return 0


def _check_sqlite(job: Job) -> list[tuple[Any, ...]]:
    """The SQLite file is intact and internally consistent; returns the record rows."""
    conn = sqlite3.connect(job.db_file)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        n = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        assert conn.execute("SELECT COUNT(DISTINCT id) FROM records").fetchone()[0] == n
        assert conn.execute("SELECT COUNT(DISTINCT path) FROM records").fetchone()[0] == n
        # every record was committed whole: a vector per space and its tags
        spaces = conn.execute("SELECT value FROM meta WHERE key = 'spaces'").fetchone()
        if n:
            assert spaces is not None
            assert set(json.loads(spaces[0])) == {"image", "text"}
        assert conn.execute(
            "SELECT COUNT(*) FROM records r WHERE (SELECT COUNT(*) FROM vectors v WHERE v.rid = r.rowid) != 2"
        ).fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0] == 2 * n
        assert conn.execute(
            "SELECT COUNT(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.rid = r.rowid)"
        ).fetchone()[0] == 0
    finally:
        conn.close()
    rows = job.rows()
    known = {str(p) for p in job.files}
    for _rid, path, content_hash, _, _ in rows:
        assert path in known
        assert content_hash == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return rows


def _check_opens_and_searches(job: Job, expected_ids: set[str]) -> None:
    """A fresh Extractor opens the store, counts it right and searches it from a rebuilt index."""
    settings = settings_for_tests(job.db, preset="tiny", batch_size=BATCH_SIZE)
    with Extractor(settings=settings, image_embedder=TinyImageEmbedder()) as ex:
        assert ex.count() == len(expected_ids)
        assert {r.id for r in ex.list(limit=10 * N_IMAGES)} == expected_ids
        hits = ex.search("red bright colour", limit=N_IMAGES)
        assert len(hits) == len(expected_ids)
        for hit in hits:
            assert hit.record.id in expected_ids
            assert ex.get(hit.record.id).path == hit.record.path
        if expected_ids:
            # the FAISS index holds exactly the committed records, whatever was on disk before
            for space, dim in (("image", TinyImageEmbedder.dim), ("text", TinyTextEmbedder.dim)):
                q = np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)
                found = [rid for rid, _ in ex.store.query(space, q, 10 * N_IMAGES)]
                assert len(found) == len(set(found)) == len(expected_ids), space
                assert set(found) == expected_ids, space
            first = ex.get(sorted(expected_ids)[0])
            similar = ex.search_image(first.path, limit=N_IMAGES, exclude_self=False)
            assert similar and similar[0].record.id == first.id
            assert {h.record.id for h in similar} <= expected_ids


# -- the test -----------------------------------------------------------------------------------

CASES = {
    # killed while the models work on the very first batch: nothing committed yet
    "first-batch": dict(delay=0.4, batches=1, records=None, seeded_wait=None, pre_run=0),
    # killed just after the first batch committed (the second batch is in flight)
    "after-first-commit": dict(delay=0.05, batches=None, records=BATCH_SIZE, seeded_wait=None, pre_run=0),
    # killed at a random-but-seeded moment (0-0.3 s) after the models started; a whole run
    # takes at least 10 batches x 0.05 s, so the kill lands before it ends
    "seeded-random": dict(delay=0.05, batches=1, records=None, seeded_wait=7, pre_run=0),
    # a completed earlier run saved FAISS files; the killed run makes them stale
    "stale-index-midway": dict(delay=0.05, batches=None, records=24, seeded_wait=None, pre_run=12),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_then_resume(tmp_path: Path, image_dir: Path, case: str) -> None:
    cfg = CASES[case]
    job = Job(tmp_path, image_dir)

    if cfg["pre_run"]:
        pre = job.run(limit=cfg["pre_run"])
        assert pre == {"total": cfg["pre_run"], "processed": cfg["pre_run"], "skipped": 0, "failed": 0,
                       "failed_files": []}
        assert (job.db / f"{COLLECTION}.image.faiss").exists()
        stamp_before = json.loads((job.db / f"{COLLECTION}.faiss.json").read_text())

    proc, marker, log = job.start(delay=cfg["delay"])
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"the run ended before it was killed:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"timed out waiting:\n{log.read_text()}"
            if cfg["batches"] is not None and _batches_started(marker) >= cfg["batches"]:
                break
            if cfg["records"] is not None and (job.committed() or 0) >= cfg["records"]:
                break
            time.sleep(0.005)
        if cfg["seeded_wait"] is not None:
            time.sleep(random.Random(cfg["seeded_wait"]).uniform(0.0, 0.3))
        assert proc.poll() is None, f"the run ended before it was killed:\n{log.read_text()}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- after the kill: the store is intact and opens cleanly -------------------------------
    rows = _check_sqlite(job)
    committed = len(rows)
    print(f"{case}: killed with {committed}/{N_IMAGES} records committed, "
          f"{_batches_started(marker)} model batches started")
    assert committed < N_IMAGES
    if case == "first-batch":
        assert committed == 0
    elif cfg["records"] is not None:
        assert committed >= cfg["records"]
    assert committed % BATCH_SIZE == 0, "a batch was committed in part"
    if cfg["pre_run"]:
        assert committed >= cfg["pre_run"]
        # the saved index files now lag behind SQLite; they must not be trusted
        conn = sqlite3.connect(job.db_file)
        generation = int(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])
        conn.close()
        assert stamp_before["image"]["generation"] < generation
    before = {r[0]: r for r in rows}
    _check_opens_and_searches(job, set(before))

    # -- run again to completion: the job finishes, committed batches are skipped ------------
    resumed = job.run()
    assert resumed["failed"] == 0, resumed["failed_files"]
    assert resumed["total"] == N_IMAGES
    assert resumed["skipped"] == committed
    assert resumed["processed"] == N_IMAGES - committed

    rows = _check_sqlite(job)
    assert len(rows) == N_IMAGES
    paths = [r[1] for r in rows]
    assert sorted(paths) == sorted(str(p) for p in job.files)  # each file exactly once
    after = {r[0]: r for r in rows}
    for rid, row in before.items():
        assert after[rid] == row, "a record committed before the kill was rewritten"

    # -- a third run finds nothing to do ------------------------------------------------------
    third = job.run()
    assert third == {"total": N_IMAGES, "processed": 0, "skipped": N_IMAGES, "failed": 0, "failed_files": []}
    assert job.rows() == rows
    _check_opens_and_searches(job, set(after))
