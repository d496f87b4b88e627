"""Clear answers from the CLI and the library: ~ and $VARS, missing stores, empty folders,
failed files once, quiet broken pipes, --json and --paths, records named by id, prefix or path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgctx import Extractor, StoredVectors
from imgctx._store_conformance import make_item
from imgctx.testing import settings_for_tests


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    return folder


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env.update(IMGCTX_LOAD_PLUGINS="imgctx.testing", IMGCTX_PRESET="tiny", HOME=str(tmp_path), **extra)
    return env


def imgctx(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imgctx", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_tilde_and_vars_are_expanded_in_the_library(tmp_path: Path, photos: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PHOTOS", str(photos))
    monkeypatch.chdir(tmp_path / "photos")
    settings = settings_for_tests(tmp_path / "unused", preset="tiny")
    with Extractor("~/db", settings=settings) as ex:
        assert ex.settings.db_path == tmp_path / "db"
        assert ex.process_directory("~/photos").processed == 6  # the README's example form
        assert ex.process_directory("$PHOTOS").skipped == 6
        assert ex.get_by_path("${PHOTOS}/chelsea.jpg") is not None
        assert ex.search_image("~/photos/chelsea.jpg", limit=1)
        assert ex.compare("~/photos/chelsea.jpg", "$PHOTOS/chelsea.jpg").exact
    assert (tmp_path / "db").is_dir() and not (tmp_path / "photos" / "~").exists()


def test_cli_expands_paths_and_refuses_a_missing_store(tmp_path: Path, photos: Path) -> None:
    env = cli_env(tmp_path, PHOTOS=str(photos))
    for command in (["list"], ["search", "red"], ["show", "abcd"], ["delete", "abcd"], ["duplicates"],
                    ["dedupe"], ["similar", "~/photos/chelsea.jpg"]):
        proc = imgctx("--db", "~/db", *command, env=env)
        assert proc.returncode == 1 and proc.stderr.startswith(f"Error: no index at {tmp_path / 'db'}"), command
    assert not (tmp_path / "db").exists()

    (tmp_path / "empty").mkdir()
    proc = imgctx("--db", "~/db", "index", "~/empty", env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(f"no images found in {tmp_path / 'empty'}")
    proc = imgctx("--db", "~/db", "index", "$PHOTOS", env=env)
    assert proc.returncode == 0 and "6 processed" in proc.stdout
    proc = imgctx("--db", "$HOME/db", "list", "--paths", env=env)
    assert sorted(proc.stdout.splitlines()) == sorted(str(p) for p in photos.iterdir())


def test_a_failed_file_is_reported_once(tmp_path: Path, photos: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    proc = imgctx("--db", str(tmp_path / "db"), "index", str(photos), env=cli_env(tmp_path))
    assert proc.returncode == 0
    assert (proc.stdout + proc.stderr).count("broken.jpg") == 1, proc.stderr


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    folder = tmp_path / ("a-folder-with-a-rather-long-name-" * 4)
    folder.mkdir()
    for k in range(600):
        Image.new("RGB", (4, 4), (k % 256, k // 256, 7)).save(folder / f"image-number-{k:04d}.png")
    env = cli_env(tmp_path)
    assert imgctx("--db", str(tmp_path / "db"), "index", str(folder), env=env).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "imgctx", "--db", str(tmp_path / "db"), "list", "--limit", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # like `| head -1`: read a line, then go away
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert err == "" and proc.returncode == 1  # click's exit for a broken pipe, with no message


def test_json_and_paths_everywhere(run, photos: Path) -> None:  # noqa: ANN001
    assert run("index", str(photos))[0] == 0
    for args in (["models", "--json", "status"], ["models", "status", "--json"], ["--json", "models", "status"]):
        code, out, _ = run(*args)
        assert code == 0 and json.loads(out)["image_embedder"]["name"] == "tiny-image", args
    code, out, _ = run("search", "red", "--paths", "--limit", "3")
    assert code == 0 and len(out.splitlines()) == 3 and all(Path(p).is_file() for p in out.splitlines())
    code, out, _ = run("similar", str(photos / "coffee.jpg"), "--paths", "--limit", "2")
    assert code == 0 and len(out.splitlines()) == 2 and str(photos / "coffee.jpg") not in out
    shutil.copy(photos / "coffee.jpg", photos / "coffee2.jpg")
    run("index", str(photos))
    code, out, _ = run("duplicates", "--paths")
    assert code == 0 and out.splitlines() == [str(photos / "coffee2.jpg")]


def test_show_delete_similar_take_an_id_a_prefix_or_a_path(run, photos: Path) -> None:  # noqa: ANN001
    run("index", str(photos))
    record = json.loads(run("show", str(photos / "rocket.jpg"), "--json")[1])
    assert record["filename"] == "rocket.jpg"
    assert json.loads(run("show", record["id"][:8], "--json")[1])["id"] == record["id"]
    code, out, _ = run("similar", record["id"][:8], "--json", "--limit", "1")
    assert code == 0 and json.loads(out)[0]["id"] != record["id"]
    code, _, err = run("show", str(photos / "nothing.jpg"))
    assert code == 1 and "is not indexed" in err
    code, out, _ = run("delete", record["id"][:10])
    assert code == 0 and f"deleted {record['id']}" in out
    code, _, err = run("show", record["id"][:8])
    assert code == 1 and "no image with id" in err


def test_an_ambiguous_prefix_is_a_clear_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from imgctx._cli import cli

    settings = settings_for_tests(tmp_path / "db", preset="tiny")
    with Extractor(settings=settings) as ex:
        ex._ready()
        items = []
        for k, rid in enumerate(("beef0001", "beef0002", "cafe0003")):
            item = make_item(k)
            vectors = {s.name: np.ones(s.dim, np.float32) / np.sqrt(s.dim) for s in ex.components.spaces()}
            items.append(StoredVectors(type(item.record)(**{**item.record.__dict__, "id": rid}), vectors))
        ex.store.upsert(items)
    runner = CliRunner()
    base = ["--db", str(tmp_path / "db"), "--preset", "tiny"]
    os.environ["IMGCTX_LOAD_PLUGINS"] = "imgctx.testing"
    try:
        result = runner.invoke(cli, [*base, "show", "beef"])
        assert result.exit_code == 1 and "'beef' is the start of 2 ids (beef0001, beef0002" in result.stderr
        result = runner.invoke(cli, [*base, "show", "cafe", "--json"])
        assert result.exit_code == 0 and json.loads(result.stdout)["id"] == "cafe0003"
    finally:
        del os.environ["IMGCTX_LOAD_PLUGINS"]
