"""``imgctx watch``: keep the index in sync with folders while they change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imgctx._cli_json import batch
from imgctx._paths import expand
from imgctx._types import BatchReport


def describe(report: BatchReport) -> str:
    """One line for a batch of changes."""
    parts = [f"{report.processed} indexed"]
    if report.moved:
        parts.append(f"{report.moved} moved")
    if report.skipped:
        parts.append(f"{report.skipped} unchanged")
    if report.failed:
        parts.append(f"{report.failed} failed")
    if report.pruned_ids:
        parts.append(f"{len(report.pruned_ids)} removed (files gone)")
    if report.excluded_files:
        parts.append(f"{len(report.excluded_files)} left out (removed as duplicates)")
    return ", ".join(parts)


@click.command()
@click.argument("directories", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recursive", "-r", is_flag=True, help="Include subfolders.")
@click.option("--debounce", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Seconds a file must stay unchanged before it is indexed.")
@click.option("--no-initial-sync", is_flag=True, help="Do not index the folders first; only follow changes.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per batch of changes.")
@click.pass_obj
def watch(ctx: Any, directories: tuple[Path, ...], recursive: bool, debounce: float,
          no_initial_sync: bool, as_json: bool) -> None:
    """Keep the index in sync with DIRECTORIES while they change (Ctrl-C to stop).

    New and changed images are indexed once their size is stable, moved ones keep their
    outputs, deleted ones leave the index. Stopping at any moment leaves a consistent index.
    """
    from imgctx._watch import Watcher

    ctx.local_only("watch")
    as_json = as_json or ctx.as_json
    folders = [expand(d) for d in directories]

    def on_batch(report: BatchReport) -> None:
        if as_json:
            click.echo(json.dumps(batch(report), ensure_ascii=False))
        else:
            click.echo(describe(report))
        for f in report.failed_files:
            if not as_json:
                click.echo(f"  failed: {f.path}: {f.reason}", err=True)

    with ctx.extractor() as ex:
        watcher = Watcher(ex, folders, recursive=recursive, debounce=debounce, on_batch=on_batch,
                          initial_sync=not no_initial_sync)
        where = ", ".join(str(f) for f in watcher.directories)
        click.echo(f"watching {where}{' and subfolders' if recursive else ''} (Ctrl-C to stop)", err=True)
        try:
            watcher.run()
        except KeyboardInterrupt:
            click.echo("stopped; the index is consistent (run `imgctx index` to catch up on anything "
                       "changed while stopping)", err=True)
