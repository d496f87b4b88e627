"""Indexing on a real two-node Ray cluster on loopback (the ``ray`` extra): the same records as
the single-process pipeline, the CLI, and crash safety (driver killed, worker node killed)."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

# The test cluster uses token authentication with a token of its own. Ray reads these variables
# when it is imported, so they are set before: this process's drivers and their subprocesses
# present the token (no other test uses Ray).
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
pytest.importorskip("ray", reason="the Ray tests need the ray extra")

from ray_support import Cluster  # noqa: E402

from imgctx import Extractor, index_on_ray, scan_directory  # noqa: E402
from imgctx._testkit import write_photo_crops  # noqa: E402
from imgctx.testing import settings_for_tests  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(cpus=4)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crops")
    write_photo_crops(folder, 200)  # "a few hundred real photos": crops of real photos
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    # a photo with EXIF (date, camera, GPS) and a letterboxed one: the annotators' findings and
    # the whole-picture hand-over must survive the trip through Ray
    from photo_support import PARIS, sample, write_photo
    from PIL import Image

    write_photo(folder / "paris.jpg", sample("astronaut").resize((160, 160)), taken="2021:07:14 10:30:00",
                make="Canon", model="EOS 5D", gps=PARIS)
    framed = Image.new("RGB", (200, 260), (0, 0, 0))
    framed.paste(sample("coffee").resize((200, 150)), (0, 55))
    framed.save(folder / "letterboxed.jpg", quality=92)
    return folder


def _all(ex: Extractor) -> dict[str, object]:
    return {r.id: r for r in ex.list(limit=100_000)}


def _db_count(db: Path) -> int:
    """Records committed so far, read straight from the store's SQLite file (WAL: a reader never
    blocks the writer)."""
    files = list(db.rglob("*.sqlite*")) + list(db.rglob("*.db"))
    for f in files:
        if f.suffix in (".sqlite", ".db", ".sqlite3"):
            try:
                with sqlite3.connect(f"file:{f}?mode=ro", uri=True, timeout=1) as con:
                    return int(con.execute("select count(*) from records").fetchone()[0])
            except sqlite3.Error:
                return 0
    return 0


@pytest.mark.models
def test_ray_gives_the_single_process_records(cluster: Cluster, crops: Path, tmp_path: Path) -> None:
    """The offline preset's real models through two Ray actors on two nodes, against the local
    pipeline on the same files: same ids, tags, captions, hashes, vectors within float noise,
    and the same failed file."""
    files = scan_directory(crops)
    seen: list[str] = []
    with Extractor(settings=settings_for_tests(tmp_path / "ray", preset="offline")) as ex:
        on_ray = index_on_ray(ex, files, cluster.address, actors=2, actor_batch_size=8,
                              progress=lambda p: seen.append(p.status))
        ray_records = _all(ex)
        ray_vectors = {s: ex.store.vectors(s, list(ray_records)) for s in ("image", "text")}
    with Extractor(settings=settings_for_tests(tmp_path / "local", preset="offline")) as ex:
        local = ex.process_many(files)
        local_records = _all(ex)
        local_vectors = {s: ex.store.vectors(s, list(local_records)) for s in ("image", "text")}

    assert on_ray.processed == local.processed == len(files) - 1
    assert [f.path for f in on_ray.failed_files] == [f.path for f in local.failed_files] == [str(crops / "broken.jpg")]
    assert on_ray.failed_files[0].reason == local.failed_files[0].reason
    assert len(seen) == len(files)  # the progress callback saw every file
    assert set(ray_records) == set(local_records)
    for rid, r in ray_records.items():
        mine = local_records[rid]
        assert (r.path, r.size, r.file_size, r.format, r.content_hash, r.phash, r.dhash, r.mtime_ns) == \
            (mine.path, mine.size, mine.file_size, mine.format, mine.content_hash, mine.phash, mine.dhash, mine.mtime_ns)
        assert r.objects == mine.objects and r.caption == mine.caption
        assert (r.photo, r.text, r.colors, r.people) == (mine.photo, mine.text, mine.colors, mine.people), r.path
        assert r.orient_hashes == mine.orient_hashes and r.orient_hashes  # duplicate detection's hashes
        assert [t.label for t in r.tags] == [t.label for t in mine.tags]
        assert np.allclose([t.score for t in r.tags], [t.score for t in mine.tags], atol=1e-4)
        for space in ("image", "text"):
            assert np.allclose(ray_vectors[space][rid], local_vectors[space][rid], atol=1e-4), (space, r.path)
    by_name = {r.filename: r for r in ray_records.values()}
    paris = by_name["paris.jpg"].photo
    assert paris is not None and paris.camera_make == "Canon" and paris.country == "France", paris
    assert all(r.colors for r in ray_records.values())  # the colours annotator ran on every image


def test_cli_index_on_ray_then_unchanged(cluster: Cluster, crops: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`imgctx index DIR --ray ADDRESS`: the summary line, the failed file on stderr; a second
    run asks the store and sends nothing to the cluster."""
    from click.testing import CliRunner

    from imgctx._cli import cli

    monkeypatch.setenv("IMGCTX_LOAD_PLUGINS", "imgctx.testing")
    args = ["--db", str(tmp_path / "db"), "--preset", "tiny", "index", str(crops), "--ray", cluster.address,
            "--ray-actors", "2", "--ray-batch-size", "4"]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    n = len(scan_directory(crops))
    assert f"{n - 1} processed, 0 unchanged, 1 failed of {n} files" in first.stdout
    assert "broken.jpg" in first.stderr
    again = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert again.exit_code == 0
    import json

    report = json.loads(again.stdout)
    assert (report["processed"], report["skipped"], report["failed"]) == (0, n - 1, 1)
    # Ray Data's metrics poller outlives the run in this process; its failed queries must not be
    # formatted as tracebacks (ast.parse in a second thread: python/cpython#106905)
    import logging

    assert not logging.getLogger("ray.data._internal.usage.util").isEnabledFor(logging.DEBUG)


def _index_subprocess(db: Path, folder: Path, address: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "IMGCTX_LOAD_PLUGINS": "imgctx.testing", "IMGCTX_BATCH_SIZE": "4",
           "PYTHONPATH": os.pathsep.join(p for p in (str(Path(__file__).resolve().parents[1] / "src"),
                                                     os.environ.get("PYTHONPATH")) if p)}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "imgctx", "--db", str(db), "--preset", "tiny", "index", str(folder),
             "--ray", address, "--ray-actors", "2", "--ray-batch-size", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _check_exactly_once(db: Path, folder: Path) -> None:
    files = scan_directory(folder)
    with Extractor(settings=settings_for_tests(db, preset="tiny")) as ex:
        records = ex.list(limit=100_000)
        assert sorted(r.path for r in records) == sorted(str(p) for p in files)  # each once
        assert ex.count() == len(files)
        assert len(ex.store.vectors("image", [r.id for r in records])) == len(files)


KILL_RUN_IMAGES = 300


def test_driver_killed_mid_run_then_rerun_stores_every_image_once(cluster: Cluster, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo_crops(folder, KILL_RUN_IMAGES, side=96)
    db = tmp_path / "db"
    proc = _index_subprocess(db, folder, cluster.address, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and _db_count(db) < 8:
            time.sleep(0.05)
        committed = _db_count(db)
        assert proc.poll() is None, f"the run ended before it could be killed: {(tmp_path / 'first.log').read_text()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, as a crash would: no cleanup
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    assert 0 < committed < KILL_RUN_IMAGES, committed
    rerun = _index_subprocess(db, folder, cluster.address, tmp_path / "second.log")
    assert rerun.wait(300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    log = (tmp_path / "second.log").read_text()
    done = [line for line in log.splitlines() if "processed," in line][-1]
    processed, unchanged = int(done.split()[0]), int(done.split()[2])
    assert unchanged >= committed and processed + unchanged == KILL_RUN_IMAGES, done
    _check_exactly_once(db, folder)


def test_worker_node_killed_mid_run_the_job_or_the_rerun_finishes(cluster: Cluster, tmp_path: Path) -> None:
    """The worker node's processes are killed while its actor works: Ray retries the work on
    the head node and the run finishes, or (if Ray gives up) the rerun finishes it."""
    folder = tmp_path / "photos"
    write_photo_crops(folder, KILL_RUN_IMAGES, side=96)
    db = tmp_path / "db"
    outcome: dict[str, object] = {}

    def run() -> None:
        with Extractor(settings=settings_for_tests(db, preset="tiny", batch_size=4)) as ex:
            try:
                outcome["report"] = index_on_ray(ex, scan_directory(folder), cluster.address, actors=2,
                                                 actor_batch_size=2)
            except Exception as exc:  # Ray may give up; the rerun must then finish
                outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and thread.is_alive() and _db_count(db) < 8:
        time.sleep(0.05)
    assert thread.is_alive(), "the run ended before the worker node could be killed"
    assert cluster.worker is not None
    cluster.worker.stop(signal.SIGKILL)  # the node dies without a goodbye
    thread.join(400)
    assert not thread.is_alive()
    print("worker node killed; the run", "failed and was rerun:" if "error" in outcome else "finished:",
          outcome.get("error") or getattr(outcome.get("report"), "processed", None))
    try:
        if "error" in outcome:
            with Extractor(settings=settings_for_tests(db, preset="tiny", batch_size=4)) as ex:
                index_on_ray(ex, scan_directory(folder), cluster.address, actors=1, actor_batch_size=2)
        else:
            report = outcome["report"]
            assert report.failed == 0 and report.processed == KILL_RUN_IMAGES  # type: ignore[attr-defined]
        _check_exactly_once(db, folder)
    finally:
        cluster.start_worker()  # the cluster as the other tests expect it


def test_models_given_as_objects_or_a_single_path_are_refused(tmp_path: Path, photo_dir: Path) -> None:
    """Each actor builds the models by name: an Extractor given model objects cannot be sent."""
    from imgctx import ConfigurationError
    from imgctx.testing import TinyImageEmbedder

    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings, image_embedder=TinyImageEmbedder()) as ex:
        with pytest.raises(ConfigurationError, match="chosen by name"):
            index_on_ray(ex, scan_directory(photo_dir), "127.0.0.1:1")
    with Extractor(settings=settings) as ex:
        with pytest.raises(ConfigurationError, match="list of paths"):
            index_on_ray(ex, str(photo_dir), "127.0.0.1:1")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="at least 1"):
            index_on_ray(ex, scan_directory(photo_dir), "127.0.0.1:1", actors=0)
