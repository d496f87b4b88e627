from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from imgctx import Extractor, Settings
from imgctx._cli import cli
from imgctx.testing import SAMPLE_PHOTOS, settings_for_tests, write_sample_photos

# The store conformance suite lives in the package; rewrite its asserts for readable failures.
pytest.register_assert_rewrite("imgctx._store_conformance")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's IMGCTX_* or contract variables."""
    import os

    for name in list(os.environ):
        if name.startswith("IMGCTX_") or name in {
            "DEVICE", "DB_PATH", "COLLECTION_NAME", "USE_LOCAL_FILES_ONLY", "LOG_LEVEL",
            "LOG_FILE", "LOCAL_BLIP_MODEL_PATH", "LOCAL_CLIP_MODEL_PATH",
        }:
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos from scikit-image as JPEGs (read-only: copy before changing)."""
    folder = tmp_path_factory.mktemp("photos")
    write_sample_photos(folder, SAMPLE_PHOTOS)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for_tests(tmp_path / "db")


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Extractor]:
    """An Extractor with the weight-free tiny models and the real faiss store."""
    with Extractor(settings=settings_for_tests(tmp_path / "db", preset="tiny")) as ex:
        yield ex


@pytest.fixture(scope="session")
def offline_index(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[Extractor]:
    """The offline preset's real weights over the sample photos, indexed once per session."""
    db = tmp_path_factory.mktemp("offline-db")
    ex = Extractor(settings=settings_for_tests(db, preset="offline"))
    report = ex.process_directory(photo_dir)
    assert report.failed == 0, report.failed_files
    yield ex
    ex.close()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201 - fixture returning a helper
    """Invoke the CLI in-process on a fresh store with the tiny preset (the test doubles loaded
    as a plugin, as IMGCTX_LOAD_PLUGINS does): (exit code, stdout, stderr)."""
    monkeypatch.setenv("IMGCTX_LOAD_PLUGINS", "imgctx.testing")
    runner = CliRunner()
    db = tmp_path / "db"

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(cli, ["--db", str(db), "--preset", "tiny", *args], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    return invoke
