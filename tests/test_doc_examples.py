"""The examples in the docs marked ``<!-- checked example -->`` are run, and what they print is
compared with what the docs show: scores and outputs cannot drift from the code.

Console examples run in a folder holding ``photos/`` (a copy of ``examples/photos``) with the
default ``offline`` preset; the docs' ``/home/me/photos`` stands for that folder, record ids
(32 hex digits) and timings (``in 4.1s``) are compared as placeholders. Python examples run
with ``ex``: an Extractor over the same photos, already indexed; the lines after the code
starting with ``# `` are the expected output. A command without shown output must succeed."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgctx import Extractor
from imgctx._cli import cli

pytestmark = pytest.mark.models

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- checked example -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*```(console|python)\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for k, m in enumerate(BLOCK.finditer(doc.read_text(encoding="utf-8"))):
            found.append((f"{doc.name}#{k + 1}", m.group(1), m.group(2)))
    return found


def normalise(text: str, photos: Path) -> list[str]:
    text = text.replace(str(photos), "/home/me/photos")
    text = re.sub(r"\b[0-9a-f]{32}\b", "<id>", text)
    text = re.sub(r"\bin \d+\.\d+s\b", "in <t>s", text)
    return [line.rstrip() for line in text.strip("\n").splitlines()]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "examples" / "photos", folder / "photos")
    return folder


def test_some_examples_are_checked() -> None:
    kinds = {kind for _, kind, _ in examples()}
    assert kinds == {"console", "python"} and len(examples()) >= 3


@pytest.mark.parametrize(("where", "kind", "body"), examples(), ids=[e[0] for e in examples()])
def test_doc_example_prints_what_the_docs_show(where: str, kind: str, body: str, workspace: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    photos = workspace / "photos"
    if kind == "python":
        code = [line for line in body.splitlines() if not line.startswith("# ")]
        expected = [line[2:] for line in body.splitlines() if line.startswith("# ")]
        out = io.StringIO()
        with Extractor(workspace / "py_db") as ex, contextlib.redirect_stdout(out):
            ex.process_directory(photos)
            exec("\n".join(code), {"ex": ex})  # noqa: S102 - the docs' own example
        assert normalise(out.getvalue(), photos) == normalise("\n".join(expected), photos), where
        return
    runs: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif runs:
            runs[-1][1].append(line)
    runner = CliRunner()
    for command, shown in runs:
        args = shlex.split(command)
        assert args[0] == "imgctx", where
        result = runner.invoke(cli, args[1:], catch_exceptions=False)
        assert result.exit_code == 0, (where, command, result.stderr)
        if shown:
            assert normalise(result.stdout, photos) == normalise("\n".join(shown), photos), (where, command)
