"""A command loads only the models it uses, and the library loads them quietly (real offline
weights, the real faiss store)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgctx import Extractor

pytestmark = pytest.mark.models


def test_a_command_loads_only_the_models_it_uses(offline_index: Extractor) -> None:
    with Extractor(settings=offline_index.settings) as ex:
        first = ex.list(limit=1)[0]
        assert ex.get(first.id) == first and ex.count() == offline_index.count()
        ex.find_duplicates()  # over the store: hashes and stored vectors only
        ex.remove_duplicates(dry_run=True)
        assert not any(s.loaded for role, s in ex.models.status().items() if role != "captioner")

        assert ex.search("a cat", limit=1)[0].record.filename == "chelsea.jpg"
        status = ex.models.status()
        assert status["text_embedder"].loaded
        assert not status["image_embedder"].loaded and not status["tagger"].loaded  # text search: no image model

        ex.search_image(first.path, limit=1)
        assert ex.models.status()["image_embedder"].loaded


def test_the_library_loads_models_quietly(tmp_path: Path, photo_dir: Path) -> None:
    code = (
        "import sys\n"
        "from imgctx import Extractor\n"
        f"with Extractor({str(tmp_path / 'db')!r}, preset='offline') as ex:\n"
        f"    ex.process_directory({str(photo_dir)!r})\n"
        "    print(ex.search('a cat', limit=1)[0].record.filename)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCTX_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "chelsea.jpg"
    assert proc.stderr == ""  # no "Loading weights" bar, no warnings
