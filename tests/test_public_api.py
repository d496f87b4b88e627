"""The public surface: exported names, light import, settings from the environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import imgctx
from imgctx import Settings

EXPECTED = {
    "PRESETS", "BatchReport", "ConfigurationError", "Extractor", "FailedFile", "ImageError",
    "ImageNotFoundError", "ImageRecord", "ImageTooLargeError", "ImgctxError",
    "IncompatibleIndexError", "InvalidImageError", "MissingDependencyError", "ModelLoadError",
    "ModelStatus", "PluginCollisionError", "PluginNotFoundError", "Preset", "ProcessResult",
    "Progress", "RecordNotFoundError", "SearchHit", "ServerSettings", "Settings", "SpaceSpec", "StoreError",
    "StoredVectors", "Tag", "__version__", "DecodedImage", "load_image", "scan_directory", "sniff_format",
}
EXPECTED |= {"Comparison", "DuplicateGroup", "DuplicateMatch", "DuplicateReport", "RemovalReport"}
# defaults the CLI and the server take from the library instead of re-typing them
EXPECTED |= {"DEFAULT_THRESHOLD", "REMOVE_THRESHOLD", "KEEP_POLICIES"}
# for plugin authors: the hook marker, the role protocols and the helpers the built-ins use
EXPECTED |= {"hookimpl", "Captioner", "ImageEmbedder", "CrossModalEmbedder", "TextEmbedder", "Tagger",
             "VectorStore", "LazyModel", "check_spaces", "normalise_objects", "PluginSettings", "plugin_config"}
EXPECTED |= {"configure_logging", "delete_file", "FileOutsideRootsError"}
# the same API against a server
EXPECTED |= {"connect", "connect_async", "Client", "AsyncClient", "RemoteTask", "RemoteError"}
EXPECTED |= {"Watcher", "Results", "parse_mixed_query"}  # index kept in sync with folders; result lists; combined queries
# beyond one machine: Ray indexing and Parquet shards for other tools
EXPECTED |= {"index_on_ray", "export_parquet", "import_parquet", "ParquetReport"}
# photo metadata, text, colours and people (issue 14): the record's types, the annotator role, filters
EXPECTED |= {"PhotoInfo", "Annotation", "Annotator", "RecordFilter", "make_filter", "FILTER_NAMES"}


def test_exported_names() -> None:
    assert set(imgctx.__all__) == EXPECTED
    for name in imgctx.__all__:
        assert getattr(imgctx, name) is not None


def test_every_error_derives_from_the_root() -> None:
    errors = [getattr(imgctx, n) for n in imgctx.__all__ if n.endswith("Error")]
    assert all(issubclass(e, imgctx.ImgctxError) for e in errors)


def test_import_imgctx_loads_nothing_heavy() -> None:
    code = (
        "import sys, imgctx\n"
        "from imgctx import Extractor, Settings\n"
        "import imgctx._cli, imgctx._plugins\n"
        "heavy = [m for m in ('torch', 'faiss', 'transformers', 'fastapi', 'sentence_transformers',"
        " 'open_clip', 'chromadb', 'efficientnet_lite_pytorch', 'cv2', 'rapidocr_onnxruntime',"
        " 'reverse_geocoder', 'onnxruntime', 'httpx', 'ray', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_settings_read_prefixed_and_contract_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DB_PATH", str(tmp_path / "contract"))
    monkeypatch.setenv("COLLECTION_NAME", "photos")
    monkeypatch.setenv("USE_LOCAL_FILES_ONLY", "true")
    monkeypatch.setenv("DEVICE", "auto")
    monkeypatch.setenv("LOCAL_CLIP_MODEL_PATH", "/models/clip")
    monkeypatch.setenv("IMGCTX_BATCH_SIZE", "4")
    s = Settings()
    assert s.db_path == tmp_path / "contract" and s.collection_name == "photos"
    assert s.device == "auto" and s.batch_size == 4
    # the contract's names of settings that plugins own
    from imgctx._backends.clip import ClipSettings
    from imgctx._backends.hub import HubSettings

    assert s.plugin(HubSettings).local_files_only is True
    assert s.plugin(ClipSettings).local_model_path == Path("/models/clip")
    monkeypatch.setenv("IMGCTX_DB_PATH", str(tmp_path / "prefixed"))
    assert Settings().db_path == tmp_path / "prefixed"  # the prefixed name wins


def test_invalid_settings_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("IMGCTX_DEVICE", "tpu")
    with pytest.raises(ValidationError):
        Settings()


def test_with_overrides_ignores_none_and_keeps_the_rest(tmp_path: Path) -> None:
    s = Settings(db_path=tmp_path, batch_size=3)
    t = s.with_overrides(preset="tiny", db_path=None)
    assert t.preset == "tiny" and t.db_path == tmp_path and t.batch_size == 3


def test_imagenet_coarse_table_is_consistent() -> None:
    from imgctx._backends.imagenet import coarse_nouns, group_members, labels

    names = labels()
    assert len(names) == 1000 and names[281] == "tabby"
    for members in group_members().values():
        assert set(members) <= set(names)
    nouns = coarse_nouns()
    assert "cat" in nouns[names.index("tabby")] and "animal" in nouns[names.index("tabby")]
    assert "coffee" in nouns[names.index("espresso")]
    assert "dog" in nouns[names.index("golden retriever")]
    assert nouns[names.index("lion")] and "cat" not in nouns[names.index("lion")]
    assert nouns[names.index("abacus")] == ()


def test_only_contract_names_are_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "3")
    monkeypatch.setenv("PRESET", "tiny")
    s = Settings()
    assert s.batch_size == 16 and s.preset == "offline"


def test_from_values_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMGCTX_PRESET", "tiny")
    monkeypatch.setenv("DB_PATH", "/elsewhere")
    s = Settings.from_values(db_path=tmp_path)
    assert s.preset == "offline" and s.db_path == tmp_path
    assert Settings().preset == "tiny"


SERVER = Path(imgctx.__file__).resolve().parent / "server"
# the serve command still lives in the CLI module (issue 10, item 8 moves it to the server)
SERVER_PRIVATE_IMPORTS_LEFT: set[tuple[str, str]] = set()


def test_the_server_uses_only_the_public_surface() -> None:
    import ast

    private = set()
    for path in sorted(SERVER.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):  # from imgctx import _x counts as imgctx._x
                names = [f"imgctx.{a.name}" for a in node.names] if node.module == "imgctx" else [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            private |= {(path.relative_to(SERVER).as_posix(), n) for n in names
                        if re.match(r"imgctx\._(?!_)", n)}
        assert not re.search(r"\b(ex|extractor)\.store\b", text), f"{path.name} reaches the Extractor's store"
    assert private == SERVER_PRIVATE_IMPORTS_LEFT


def test_library_types_carry_no_wire_format() -> None:
    for name in ("ImageRecord", "SearchHit", "BatchReport", "Comparison", "DuplicateGroup",
                 "DuplicateReport", "DuplicateMatch", "RemovalReport"):
        cls = getattr(imgctx, name)
        assert not {"to_dict", "image_info", "message"} & set(vars(cls)), name
