"""Everything a user can reach is documented (in the spirit of datasette's tests/test_docs.py).

Each test introspects the code, so a new export, Extractor method, setting, hook, CLI command
or option, or preset fails here until docs/ describes it.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

import imgctx
from imgctx import Extractor, Settings
from imgctx import _hookspecs as hookspecs
from imgctx import _protocols as protocols
from imgctx._cli import cli
from imgctx._extractor import ModelManager
from imgctx._presets import PRESETS

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADING = re.compile(r"^(#{2,3}) `([^`]+)`\s*$", re.MULTILINE)


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _headings(name: str, level: int = 3) -> set[str]:
    return {m.group(2) for m in HEADING.finditer(_read(name)) if len(m.group(1)) == level}


def _sections(name: str) -> dict[str, str]:
    """Level-3 backticked heading -> the text up to the next level-2 or level-3 heading."""
    text = _read(name)
    out: dict[str, str] = {}
    matches = list(re.finditer(r"^### `([^`]+)`\s*$", text, re.MULTILINE))
    for m in matches:
        rest = text[m.end():]
        nxt = re.search(r"^#{2,3} ", rest, re.MULTILINE)
        out[m.group(1)] = rest[: nxt.start()] if nxt else rest
    return out


def _public_methods(cls: type) -> list[str]:
    return sorted(
        name for name, value in vars(cls).items()
        if not name.startswith("_") and callable(value) and not isinstance(value, property)
    )


# -- api.md --------------------------------------------------------------------------------------

EXPORTED = sorted(n for n in imgctx.__all__ if n != "__version__")


@pytest.mark.parametrize("name", EXPORTED)
def test_every_export_has_a_heading(name: str) -> None:
    assert name in _headings("api.md"), f"docs/api.md needs a '### `{name}`' heading"


@pytest.mark.parametrize("method", _public_methods(Extractor))
def test_every_extractor_method_has_a_heading(method: str) -> None:
    heading = f"Extractor.{method}"
    assert heading in _headings("api.md"), f"docs/api.md needs a '### `{heading}`' heading"


@pytest.mark.parametrize("method", _public_methods(ModelManager))
def test_every_model_manager_method_has_a_heading(method: str) -> None:
    heading = f"Extractor.models.{method}"
    assert heading in _headings("api.md"), f"docs/api.md needs a '### `{heading}`' heading"


def test_extractor_methods_list_their_parameters() -> None:
    sections = _sections("api.md")
    for method in _public_methods(Extractor):
        params = [p for p in inspect.signature(getattr(Extractor, method)).parameters if p != "self"]
        body = sections[f"Extractor.{method}"]
        missing = [p for p in params if p not in body]
        assert not missing, f"Extractor.{method}: parameters {missing} are not in its section"
    init_params = [p for p in inspect.signature(Extractor.__init__).parameters if p != "self"]
    missing = [p for p in init_params if p not in sections["Extractor"]]
    assert not missing, f"Extractor(): parameters {missing} are not in its section"


def test_result_type_fields_are_documented() -> None:
    import dataclasses

    sections = _sections("api.md")
    for name in EXPORTED:
        obj = getattr(imgctx, name)
        if dataclasses.is_dataclass(obj):
            body = sections[name]
            missing = [f.name for f in dataclasses.fields(obj) if f"`{f.name}`" not in body and f.name not in body]
            assert not missing, f"{name}: fields {missing} are not in its section of docs/api.md"


def test_api_headings_are_not_stale() -> None:
    """A 'Extractor.x' heading must name something that still exists."""
    methods = set(_public_methods(Extractor))
    manager = set(_public_methods(ModelManager))
    for heading in _headings("api.md"):
        if heading.startswith("Extractor.models."):
            assert heading.removeprefix("Extractor.models.") in manager, heading
        elif heading.startswith("Extractor."):
            assert heading.removeprefix("Extractor.") in methods, heading
        else:
            assert heading in imgctx.__all__, f"docs/api.md documents {heading!r}, which is not exported"


# -- settings.md ---------------------------------------------------------------------------------


def _env_names(field: str) -> list[str]:
    """Every environment variable a field is read from, as declared (prefixed and contract)."""
    alias = Settings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", [alias] if isinstance(alias, str) else [])
    names = [c for c in choices if isinstance(c, str)]
    upper = list(dict.fromkeys(n.upper() for n in names))
    return upper or [f"IMGCTX_{field.upper()}"]


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_table(field: str) -> None:
    rows = [line for line in _read("settings.md").splitlines() if line.startswith(f"| `{field}` |")]
    assert rows, f"docs/settings.md needs a table row starting with '| `{field}` |'"
    row = rows[0]
    assert f"IMGCTX_{field.upper()}" in row, f"the row for {field} does not name IMGCTX_{field.upper()}"
    for env in _env_names(field):
        assert f"`{env}`" in row, f"the row for {field} does not name {env}"


def test_settings_doc_lists_no_removed_field() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \|", _read("settings.md"), re.MULTILINE)
    assert set(documented) == set(Settings.model_fields)


# -- plugins.md ----------------------------------------------------------------------------------

HOOKS = sorted(
    name for name, value in vars(hookspecs).items()
    if callable(value) and hasattr(value, "imgctx_spec")
)


def test_hookspecs_were_found() -> None:
    assert HOOKS and all(h.startswith("register_") for h in HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert hook in _headings("plugins.md"), f"docs/plugins.md needs a '### `{hook}`' heading"


PROTOCOLS = sorted(
    name for name, value in vars(protocols).items()
    if inspect.isclass(value) and getattr(value, "_is_protocol", False) and value.__module__ == protocols.__name__
)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_role_protocol_is_documented(protocol: str) -> None:
    assert protocol in _headings("plugins.md"), f"docs/plugins.md needs a '### `{protocol}`' heading"


def test_plugins_doc_shows_the_entry_point_group() -> None:
    from imgctx._plugins import ENTRY_POINT_GROUP

    assert f"[project.entry-points.{ENTRY_POINT_GROUP}]" in _read("plugins.md")


# -- cli.md --------------------------------------------------------------------------------------


def _commands(group: click.Group, prefix: str = "imgctx") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(prefix, group)]
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append((path, command))
    return found


COMMANDS = _commands(cli)


def test_cli_commands_were_found() -> None:
    names = {path for path, _ in COMMANDS}
    assert {"imgctx", "imgctx index", "imgctx models", "imgctx models status"} <= names


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS])
def test_every_cli_command_is_documented(path: str) -> None:
    assert path in _headings("cli.md"), f"docs/cli.md needs a '### `{path}`' heading"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_cli_option_is_documented(path: str, command: click.Command) -> None:
    body = _sections("cli.md")[path]
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                if opt.startswith("--"):
                    assert f"`{opt}" in body, f"{path}: option {opt} is not in its section of docs/cli.md"
        elif isinstance(param, click.Argument):
            assert param.name.upper() in body, f"{path}: argument {param.name.upper()} is not in its section"


def test_cli_doc_names_the_exit_codes() -> None:
    text = _read("cli.md")
    for code in ("| 0 |", "| 1 |", "| 130 |"):
        assert code in text


# -- presets.md ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_documented(preset: str) -> None:
    assert preset in _headings("presets.md", level=2), f"docs/presets.md needs a '## `{preset}`' heading"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_role_plugin_is_named(preset: str) -> None:
    text = _read("presets.md")
    p = PRESETS[preset]
    for name in (p.captioner, p.image_embedder, p.text_embedder, *p.taggers):
        if name is not None:
            assert f"`{name}`" in text, f"docs/presets.md does not name {preset}'s plugin {name!r}"


# -- links ---------------------------------------------------------------------------------------


def test_relative_links_point_to_existing_pages() -> None:
    for page in sorted(DOCS.glob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target:
                assert (DOCS / target).exists(), f"{page.name} links to missing {target}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_anchors_point_to_existing_headings() -> None:
    anchors = {
        page.name: {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)}
        for page in DOCS.glob("*.md")
    }
    for page in sorted(DOCS.glob("*.md")):
        for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", page.read_text(encoding="utf-8")):
            name = target or page.name
            if "://" in name:
                continue
            assert anchor in anchors.get(name, set()), f"{page.name} links to missing {name}#{anchor}"


# -- server.md -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", sorted(imgctx.ServerSettings.model_fields))
def test_every_server_setting_is_in_the_table(field: str) -> None:
    rows = [line for line in _read("server.md").splitlines() if line.startswith(f"| `{field}` |")]
    assert rows, f"docs/server.md needs a table row starting with '| `{field}` |'"
    assert f"`IMGCTX_{field.upper()}`" in rows[0], f"the row for {field} does not name IMGCTX_{field.upper()}"


def test_server_doc_lists_no_removed_setting() -> None:
    text = _read("server.md").split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE)
    assert set(documented) == set(imgctx.ServerSettings.model_fields)


def _plugin_settings_classes() -> list[type]:
    from imgctx._plugins import load_registry, settings_classes

    found = {cls for info in load_registry().all() for cls in settings_classes(info)}
    return sorted(found, key=lambda c: c.group())


@pytest.mark.parametrize("cls", _plugin_settings_classes(), ids=lambda c: c.group())
def test_every_plugin_setting_is_in_the_table(cls: type) -> None:
    """Each built-in plugin setting has a row naming its IMGCTX_<GROUP>_<FIELD> variable."""
    text = _read("settings.md")
    prefix = cls.model_config["env_prefix"]
    for field in cls.model_fields:
        assert f"| `{prefix}{field.upper()}` |" in text, f"docs/settings.md needs a row for {prefix}{field.upper()}"
