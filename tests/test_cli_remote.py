"""``imgctx --server URL ...``: the read commands (and delete, dedupe) against a live server give
what the library gives locally."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from click.testing import CliRunner  # noqa: E402
from server_support import make_app, photo_root, serving  # noqa: E402

from imgctx import Extractor, _cli_json  # noqa: E402
from imgctx._cli import cli  # noqa: E402
from imgctx.testing import settings_for_tests  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Iterator[tuple[str, Extractor, Path]]:
    base = tmp_path_factory.mktemp("cli-remote")
    root = photo_root(base, photo_dir)
    ex = Extractor(settings=settings_for_tests(base / "db", preset="tiny"))
    ex.process_directory(root / "photos")
    with serving(make_app(base, root, extractor=ex, api_key="s3cret")) as url:
        yield url, ex, root
    ex.close()


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _json(url: str, *args: str) -> Any:
    code, out, err = _run("--server", url, "--api-key", "s3cret", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_search_and_similar(server: tuple[str, Extractor, Path]) -> None:
    url, ex, root = server
    assert _json(url, "search", "dark blue", "--limit", "3") == [_cli_json.hit(h) for h in ex.search("dark blue", limit=3)]
    image = root / "photos" / "rocket.jpg"  # a file on this machine: uploaded
    assert _json(url, "similar", str(image), "--objects", "red") == \
        [_cli_json.hit(h) for h in ex.search_image(image, objects="red")]


def test_list_show_and_models(server: tuple[str, Extractor, Path]) -> None:
    url, ex, _ = server
    assert _json(url, "list", "--objects", "blue,green") == [_cli_json.image_info(r) for r in ex.list(objects="blue,green")]
    first = ex.list(limit=1)[0]
    assert _json(url, "show", first.id) == _cli_json.record(first)
    status = _json(url, "models", "status")
    assert status.keys() == ex.models.status().keys()
    code, out, _ = _run("--server", url, "--api-key", "s3cret", "list", "--limit", "2")
    assert code == 0 and out.strip().endswith(f"2 shown of {ex.count()}")


def test_duplicates_and_compare_on_server_paths(server: tuple[str, Extractor, Path]) -> None:
    url, ex, root = server
    report = _json(url, "duplicates", "--threshold", "0.5")
    expected = _cli_json.duplicates(ex.find_duplicates(threshold=0.5))
    assert {k: v for k, v in report.items() if k != "check_time"} == \
        {k: v for k, v in expected.items() if k != "check_time"}
    a, b = root / "photos" / "coffee.jpg", root / "photos" / "chelsea.jpg"
    assert _json(url, "compare", str(a), str(b)) == _cli_json.comparison(ex.compare(a, b))


def test_errors_and_the_api_key(server: tuple[str, Extractor, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, ex, _ = server
    code, _, err = _run("--server", url, "show", "0" * 32)
    assert code == 1 and "AuthenticationError" not in err and "X-API-Key" in err
    code, _, err = _run("--server", url, "--api-key", "s3cret", "show", "0" * 32)
    assert code == 1 and err.startswith("Error: no image with id")
    env = {"IMGCTX_SERVER_URL": url, "IMGCTX_API_KEY": "s3cret"}  # both from the environment
    code, out, err = _run("list", "--json", env=env)
    assert code == 0, err
    assert len(json.loads(out)) == ex.count()


@pytest.mark.parametrize("args", [["index", "photos"], ["migrate", "--from", "faiss:a", "--to", "faiss:b"]])
def test_local_commands_refuse_a_server(server: tuple[str, Extractor, Path], args: list[str]) -> None:
    url, _, _ = server
    code, _, err = _run("--server", url, *args)
    assert code == 2 and "not with --server" in err
