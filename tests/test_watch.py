"""``imgctx watch`` and ``Watcher``: real files written, moved and deleted while the watcher runs
(inotify through watchdog), on the real faiss store. Every wait is a bounded loop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from imgctx import BatchReport, Extractor, Watcher
from imgctx.testing import settings_for_tests

DEBOUNCE = 0.2


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def small_png(path: Path, k: int) -> None:
    Image.new("RGB", (8, 8), ((k * 37) % 256, (k * 91) % 256, (k * 53) % 256)).save(path, "PNG")


def test_watch_follows_new_moved_deleted_and_slowly_written_files(tiny: Extractor, tmp_path: Path,
                                                                   photo_dir: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    shutil.copy(photo_dir / "coffee.jpg", folder / "coffee.jpg")
    batches: list[BatchReport] = []
    with Watcher(tiny, [folder], recursive=True, debounce=DEBOUNCE, on_batch=batches.append) as watcher:
        assert watcher.ready.wait(30)
        assert tiny.count() == 1  # the initial sync

        shutil.copy(photo_dir / "rocket.jpg", folder / "rocket.jpg")
        (folder / "sub").mkdir()
        shutil.copy(photo_dir / "chelsea.jpg", folder / "sub" / "cat.jpg")
        assert wait_for(lambda: tiny.count() == 3)

        # a file written slowly is taken only once complete (never a failed half file)
        data = (photo_dir / "astronaut.jpg").read_bytes()
        with open(folder / "slow.jpg", "wb") as f:
            for start in range(0, len(data), len(data) // 4 + 1):
                f.write(data[start:start + len(data) // 4 + 1])
                f.flush()
                time.sleep(DEBOUNCE * 0.6)
        assert wait_for(lambda: tiny.get_by_path(folder / "slow.jpg") is not None)

        before = tiny.get_by_path(folder / "rocket.jpg")
        calls = tiny.components.image_embedder.calls
        (folder / "rocket.jpg").rename(folder / "launch.jpg")
        (folder / "coffee.jpg").unlink()
        assert wait_for(lambda: tiny.get_by_path(folder / "launch.jpg") is not None
                        and tiny.get_by_path(folder / "coffee.jpg") is None and watcher.idle())
        moved = tiny.get_by_path(folder / "launch.jpg")
        assert moved is not None and before is not None and moved.created_at == before.created_at
        assert tiny.get_by_path(folder / "rocket.jpg") is None
        assert tiny.components.image_embedder.calls == calls  # the move ran no model

        shutil.rmtree(folder / "sub")
        assert wait_for(lambda: tiny.get_by_path(folder / "sub" / "cat.jpg") is None)
    assert tiny.count() == 2
    assert not any(b.failed for b in batches)
    assert {Path(r.path).name for r in tiny.list()} == {"launch.jpg", "slow.jpg"}


def test_a_burst_of_1000_files_is_absorbed(tmp_path: Path) -> None:
    folder = tmp_path / "burst"
    folder.mkdir()
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny")) as ex, \
            Watcher(ex, [folder], debounce=DEBOUNCE) as watcher:
        assert watcher.ready.wait(30)
        for k in range(1000):
            small_png(folder / f"img{k:04d}.png", k)
        assert wait_for(lambda: ex.count() == 1000 and watcher.idle(), timeout=240), ex.count()
        assert {r.filename for r in ex.list(limit=2000)} == {f"img{k:04d}.png" for k in range(1000)}


def test_cli_watch_and_ctrl_c_leave_a_consistent_store(tmp_path: Path, photo_dir: Path) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    db = tmp_path / "db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env.update(IMGCTX_LOAD_PLUGINS="imgctx.testing", IMGCTX_PRESET="tiny", IMGCTX_DB_PATH=str(db),
               PYTHONUNBUFFERED="1")
    # Ctrl-C as in a terminal: a shell that runs the tests in the background (`... &` in a script)
    # starts them with SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "imgctx", "watch", str(folder), "--debounce", str(DEBOUNCE)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_for(lambda: (db / "image_contexts.sqlite3").exists(), timeout=60)
        time.sleep(0.5)  # the observer is started before the (empty) initial sync ends
        shutil.copy(photo_dir / "chelsea.jpg", folder / "cat.jpg")
        with Extractor(settings=settings_for_tests(db, preset="tiny")) as ex:
            assert wait_for(lambda: ex.count() == 1, timeout=60)
        for k in range(300):  # interrupt while a batch is being taken
            small_png(folder / f"img{k:03d}.png", k)
        time.sleep(DEBOUNCE * 3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "1 indexed" in out and "Traceback" not in err and "stopped; the index is consistent" in err
    with Extractor(settings=settings_for_tests(db, preset="tiny")) as ex:
        n = ex.count()
        assert len(ex.list(limit=1000)) == n and 1 <= n <= 301
        assert all(Path(r.path).exists() for r in ex.list(limit=1000))
        assert len(ex.search_image(folder / "cat.jpg", limit=500, exclude_self=False)) == n
        assert ex.process_directory(folder).failed == 0 and ex.count() == 301


@pytest.mark.parametrize("debounce", [0, -1])
def test_bad_arguments_are_clear(tiny: Extractor, tmp_path: Path, debounce: float) -> None:
    with pytest.raises(ValueError, match="debounce must be positive"):
        Watcher(tiny, [tmp_path], debounce=debounce)
    from imgctx import ImageNotFoundError

    with pytest.raises(ImageNotFoundError, match="directory not found"):
        Watcher(tiny, [tmp_path / "nope"])
