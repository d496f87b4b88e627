"""The third-party plugin of docs/plugins.md, built and installed by pip from the docs' own two
files, found through its entry point and used: its captioner, its setting, its command."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgctx import Extractor
from imgctx._plugins import load_registry
from imgctx.testing import settings_for_tests, write_sample_photos

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _walkthrough_files() -> dict[str, str]:
    text = DOCS.read_text()
    section = text[text.index("## A complete third-party plugin"):text.index("## Testing a plugin")]
    toml = re.search(r"`pyproject.toml`:\n\n```toml\n(.*?)```", section, re.S)
    module = re.search(r"`imgctx_shout.py`:\n\n```python\n(.*?)```", section, re.S)
    assert toml and module, "docs/plugins.md lost the walkthrough's pyproject.toml or imgctx_shout.py"
    return {"pyproject.toml": toml.group(1), "imgctx_shout.py": module.group(1)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """pip builds the package from the docs and installs it into a folder put on sys.path."""
    root = tmp_path_factory.mktemp("shout")
    package, site = root / "imgctx-shout", root / "site"
    package.mkdir()
    for name, content in _walkthrough_files().items():
        (package / name).write_text(content)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(package)], check=True, timeout=300)
    assert (site / "imgctx_shout.py").is_file()
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("imgctx_shout", None)
        importlib.invalidate_caches()
        load_registry(refresh=True)


def test_the_installed_plugin_captions_with_its_own_setting(installed: Path, tmp_path: Path) -> None:
    load_registry(refresh=True)
    photos = write_sample_photos(tmp_path / "photos", ("coffee",))
    settings = settings_for_tests(tmp_path / "db", preset="tiny", plugin_settings={"shout": {"suffix": "?!"}})
    with Extractor(settings=settings, store="memory", captioner="shout") as ex:
        info = ex.registry.get("captioner", "shout")
        assert info.plugin == "shout"  # the entry point's name
        record = ex.process(photos[0]).record
    assert record.caption.endswith("?!") and record.caption[:-2].isupper()
    assert record.caption[:-2].lower() == record.tags[0].label


def test_the_installed_plugin_adds_a_command_and_is_listed(installed: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    env.update(PYTHONPATH=os.pathsep.join([str(installed), env.get("PYTHONPATH", "")]),
               IMGCTX_SHOUT_SUFFIX="!!!", IMGCTX_DB_PATH=str(tmp_path / "db"))
    out = subprocess.run([sys.executable, "-m", "imgctx", "shout-check"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "suffix: !!!"
    listed = subprocess.run([sys.executable, "-m", "imgctx", "--json", "plugins"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    shout = json.loads(listed.stdout)["shout"]
    assert shout["roles"] == {"captioner": ["shout"]}
    assert shout["settings"] == {"shout": ["IMGCTX_SHOUT_SUFFIX"]}
    assert shout["commands"] == ["shout-check"]
    assert "imgctx.testing" not in json.loads(listed.stdout)  # test doubles only where asked for
