"""``imgctx export`` and ``imgctx import``: a store as Parquet shards and back (added through the
``register_commands`` hook of this built-in plugin). The store is the one the global options
name (``--db``, ``--store``), or a store URI (``--from``, ``--to``; see docs/stores.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from imgctx._hookspecs import hookimpl
from imgctx._settings import Settings


def _settings(click_ctx: click.Context) -> tuple[Settings, bool]:
    obj = click_ctx.find_root().obj
    settings = obj.settings() if obj is not None and hasattr(obj, "settings") else Settings()
    return settings, bool(getattr(obj, "as_json", False))


def _open(settings: Settings, uri: str | None) -> Any:
    from imgctx._migrate import open_store
    from imgctx._plugins import load_registry

    registry = load_registry(extra=settings.load_plugins)
    if uri:
        return open_store(uri, settings, registry)
    return registry.get("store", settings.store).factory(settings)


def _report(report: Any, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps({
            "records": report.records, "shards": list(report.shards),
            "spaces": [{"name": s.name, "model": s.model, "dim": s.dim} for s in report.spaces],
            "seconds": round(report.seconds, 3),
        }, indent=2))
    else:
        click.echo(f"{verb} {report.records} records ({len(report.shards)} Parquet shards; spaces: "
                   f"{', '.join(s.name for s in report.spaces) or 'none'}) in {report.seconds:.1f}s")


@click.command(name="export")
@click.argument("out_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["parquet"]), default="parquet", show_default=True,
              help="File format of the shards.")
@click.option("--from", "source", metavar="URI", help="Store to export (default: the --db/--store one).")
@click.option("--shard-size", default=50_000, show_default=True, type=click.IntRange(1), help="Records per shard.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def export_command(click_ctx: click.Context, out_dir: Path, fmt: str, source: str | None, shard_size: int,
                   as_json: bool) -> None:
    """Write every record, its tags, caption and vectors as Parquet shards into OUT_DIR."""
    from tqdm import tqdm

    from imgctx._parquet import export_parquet

    settings, global_json = _settings(click_ctx)
    as_json = as_json or global_json
    store = _open(settings, source)
    try:
        bar = tqdm(total=store.count(), unit="rec", disable=as_json or None, file=sys.stderr)
        try:
            report = export_parquet(store, out_dir, shard_size, lambda done, _total: bar.update(done - bar.n))
        finally:
            bar.close()
    finally:
        store.close()
    _report(report, as_json, "exported")


@click.command(name="import")
@click.argument("in_dir", type=click.Path(path_type=Path))
@click.option("--to", "destination", metavar="URI", help="Store to load into (default: the --db/--store one).")
@click.option("--batch-size", default=1024, show_default=True, type=click.IntRange(1, 100_000),
              help="Records per store write.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_context
def import_command(click_ctx: click.Context, in_dir: Path, destination: str | None, batch_size: int,
                   as_json: bool) -> None:
    """Load Parquet shards written by `imgctx export` (a folder, or one file) into a store."""
    from tqdm import tqdm

    from imgctx._parquet import import_parquet

    settings, global_json = _settings(click_ctx)
    as_json = as_json or global_json
    store = _open(settings, destination)
    try:
        bar = tqdm(unit="rec", disable=as_json or None, file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = import_parquet(in_dir, store, batch_size, progress)
        finally:
            bar.close()
    finally:
        store.close()
    _report(report, as_json, "imported")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(export_command)
    cli.add_command(import_command)
