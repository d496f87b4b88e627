"""The imgctx command line, through click's runner and once as a real subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgctx._cli import cli


@pytest.fixture
def photos(tmp_path: Path, photo_dir: Path) -> Path:
    folder = tmp_path / "photos"
    shutil.copytree(photo_dir, folder)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    return folder


def test_index_search_list_show_delete(run, photos: Path) -> None:  # noqa: ANN001
    code, out, err = run("index", str(photos), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["processed"] == 6 and report["failed"] == 1
    assert report["failed_files"][0]["path"].endswith("broken.jpg")

    code, out, err = run("index", str(photos))
    assert code == 0 and "0 processed, 6 unchanged, 1 failed" in out and "broken.jpg" in err

    code, out, _ = run("search", "red", "--limit", "2", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and {"score", "distance", "id", "objects"} <= set(hits[0])

    code, out, _ = run("--json", "list", "--objects", "colour", "--limit", "3")
    assert code == 0 and len(json.loads(out)) == 3

    record_id = hits[0]["id"]
    code, out, _ = run("show", record_id, "--json")
    assert code == 0 and json.loads(out)["content_hash"]

    code, out, _ = run("similar", str(photos / "rocket.jpg"), "--json", "--limit", "1")
    assert code == 0 and len(json.loads(out)) == 1

    code, out, _ = run("delete", record_id)
    assert code == 0 and "deleted" in out
    code, out, err = run("show", record_id)
    assert code == 1 and err.strip() == f"Error: no image with id {record_id!r}"


def test_errors_are_one_line_without_traceback(run, tmp_path: Path) -> None:  # noqa: ANN001
    code, out, err = run("index", str(tmp_path / "missing"))
    assert code == 1 and "no such file or directory" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run("similar", str(tmp_path / "nope.jpg"))
    assert code == 1 and err.startswith("Error: no index at ")  # a read command creates no store
    (tmp_path / "empty").mkdir()
    assert run("index", str(tmp_path / "empty"))[0] == 0
    code, _, err = run("similar", str(tmp_path / "nope.jpg"))
    assert code == 1 and err.startswith("Error: ") and "file not found" in err
    result = CliRunner().invoke(cli, ["--preset", "nope", "--db", str(tmp_path / "x"), "index", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "unknown preset 'nope'" in result.stderr


def test_models_status_and_preload(run) -> None:  # noqa: ANN001
    code, out, _ = run("models", "status", "--json")
    assert code == 0 and json.loads(out)["image_embedder"]["name"] == "tiny-image"
    code, out, _ = run("models", "preload", "--json")
    assert code == 0 and "total" in json.loads(out)


def test_the_captioner_setting_reaches_the_cli(run, photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("IMGCTX_CAPTIONER", "none")  # the preset's captioner left out
    code, out, _ = run("models", "status", "--json")
    assert code == 0 and "captioner" not in json.loads(out)
    assert run("index", str(photos))[0] == 0
    code, out, _ = run("--json", "list")
    assert code == 0 and len(json.loads(out)) == 6 and all(r["caption"] == "" for r in json.loads(out))
    monkeypatch.setenv("IMGCTX_CAPTIONER", "no-such-captioner")
    code, _, err = run("models", "status")
    assert code == 1 and "no-such-captioner" in err


def test_console_script_in_a_subprocess(tmp_path: Path, photos: Path) -> None:
    exe = Path(sys.executable).with_name("imgctx")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "imgctx"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env["IMGCTX_DB_PATH"] = str(tmp_path / "envdb")
    env["IMGCTX_PRESET"] = "tiny"
    env["IMGCTX_LOAD_PLUGINS"] = "imgctx.testing"
    proc = subprocess.run([*cmd, "index", str(photos)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "envdb" / "image_contexts.sqlite3").exists()
    proc = subprocess.run([*cmd, "show", "nope"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("Error:")


def test_invalid_setting_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGCTX_BATCH_SIZE", "lots")
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "db"), "list"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: invalid setting: ") and "batch_size" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
