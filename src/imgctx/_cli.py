"""The ``imgctx`` command line: index, search, similar, list, show, delete, duplicates, compare,
dedupe, migrate, models, plugins; plugins add more through the ``register_commands`` hook (the
server extra adds ``serve``)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from imgctx import _cli_json, _cli_models
from imgctx._backends.store_common import normalise_objects
from imgctx._cli_context import Context
from imgctx._cli_filters import filter_options
from imgctx._cli_records import looks_like_path, resolve
from imgctx._cli_watch import watch
from imgctx._duplicates.similarity import DEFAULT_THRESHOLD, KEEP_POLICIES, REMOVE_THRESHOLD
from imgctx._errors import ImgctxError
from imgctx._logging import configure_logging
from imgctx._paths import expand
from imgctx._plugins import describe_plugins, load_registry, make_plugin_manager
from imgctx._settings import Settings
from imgctx._types import DuplicateGroup, ImageRecord, Progress, SearchHit

log = logging.getLogger("imgctx")


def _emit(ctx: Context, data: Any, text: Callable[[], None], paths: Callable[[], list[str]] | None = None) -> None:
    if ctx.only_paths and paths is not None:
        for path in paths():
            click.echo(path)
    elif ctx.as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        text()


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def set_json(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            click_ctx.ensure_object(Context).as_json = True

    return click.option("--json", "as_json", is_flag=True, expose_value=False, callback=set_json,
                        help="Print JSON for scripts.")(f)


def _paths_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def set_paths(click_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            click_ctx.ensure_object(Context).only_paths = True

    return click.option("--paths", "only_paths", is_flag=True, expose_value=False, callback=set_paths,
                        help="Print only file paths, one per line (for piping).")(f)


def _print_record(r: ImageRecord, score: float | None = None) -> None:
    head = f"{score:.3f}  " if score is not None else ""
    click.echo(f"{head}{r.id}  {r.path}")
    click.echo(f"        {r.caption}  [{', '.join(r.objects)}]")


def _print_hits(hits: list[SearchHit], explain: bool = False) -> None:
    if not hits:
        click.echo("no matches")
    for h in hits:
        _print_record(h.record, h.score)
        if explain:
            click.echo(f"        {h.explain()}")


class _Group(click.Group):
    """Turns every imgctx error into one line on stderr and exit code 1; never a traceback.

    The commands of plugins (``register_commands``) are added the first time a command is
    looked up, not at import.
    """

    plugin_commands: dict[str, list[str]] | None = None

    def _load_plugin_commands(self) -> None:
        if self.plugin_commands is not None:
            return
        self.plugin_commands = {}
        pm = make_plugin_manager(extra=Settings().load_plugins)
        for impl in pm.hook.register_commands.get_hookimpls():
            before = set(self.commands)
            impl.function(cli=self)
            self.plugin_commands[impl.plugin_name] = sorted(set(self.commands) - before)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ImgctxError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            click.echo(f"Error: invalid setting: {problems}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, BrokenPipeError):
            raise  # click ends a broken pipe (`imgctx list | head`) quietly itself
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            click.echo(f"Error: unexpected {type(exc).__name__}: {exc} "
                       "(set IMGCTX_LOG_LEVEL=DEBUG for details)", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--db", type=click.Path(path_type=Path), help="Store folder (default: IMGCTX_DB_PATH or ./imgctx_db).")
@click.option("--preset", help="Model preset (default: IMGCTX_PRESET or 'offline').")
@click.option("--store", help="Store plugin (default: IMGCTX_STORE or 'faiss').")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--server", metavar="URL", help="Use the imgctx server at URL instead of a local store "
              "(default: IMGCTX_SERVER_URL).")
@click.option("--api-key", metavar="KEY", help="API key for --server (default: IMGCTX_API_KEY).")
@click.version_option(package_name="imgctx")
@click.pass_context
def cli(click_ctx: click.Context, db: Path | None, preset: str | None, store: str | None, as_json: bool,
        server: str | None, api_key: str | None) -> None:
    """Make a folder of images searchable: index it, then search by text or by example."""
    obj = click_ctx.ensure_object(Context)
    obj.db, obj.preset, obj.store, obj.as_json = db, preset, store, as_json or obj.as_json
    obj.server, obj.api_key = server, api_key
    configure_logging(obj.settings())


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--recursive", "-r", is_flag=True, help="Include subfolders.")
@click.option("--force", is_flag=True, help="Reprocess files even if unchanged (and re-add removed duplicates).")
@click.option("--no-prune", is_flag=True, help="Keep the records of files that are gone from the folders.")
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="Run the models on a Ray cluster (HOST:PORT, or 'auto'); needs imgctx[ray].")
@click.option("--ray-actors", default=2, show_default=True, type=click.IntRange(1), help="With --ray: model actors.")
@click.option("--ray-batch-size", default=16, show_default=True, type=click.IntRange(1),
              help="With --ray: images per model call in an actor.")
@_json_option
@click.pass_obj
def index(ctx: Context, paths: tuple[Path, ...], recursive: bool, force: bool, no_prune: bool,
          ray_address: str | None, ray_actors: int, ray_batch_size: int) -> None:
    """Index image files and folders (PATHS), here or with --ray on a Ray cluster; records of
    files gone from the folders are removed."""
    from tqdm import tqdm

    from imgctx._errors import ImageNotFoundError
    from imgctx._images import scan_directory

    ctx.local_only("index")
    files: list[Path] = []
    folders: list[Path] = []
    for p in (expand(p) for p in paths):
        if p.is_dir():
            folders.append(p)
            files.extend(scan_directory(p, recursive))
        elif p.exists():
            files.append(p)
        else:
            raise ImageNotFoundError(p, "no such file or directory")
    with ctx.extractor() as ex:
        quiet = ctx.as_json or not files
        bar = tqdm(total=len(files), unit="img", disable=quiet or None, file=sys.stderr,
                   desc="loading models")

        def progress(p: Progress) -> None:
            if p.done == 1:
                bar.set_description_str("indexing", refresh=False)
            bar.update(1)
            bar.set_postfix_str(p.status, refresh=False)

        try:
            if ray_address:
                from imgctx._ray_ingest import index_on_ray

                report = index_on_ray(ex, files, ray_address, ray_actors, ray_batch_size, force, progress)
            else:
                report = ex.process_many(files, force=force, progress=progress, prune=not no_prune)
        finally:
            bar.close()
        if not no_prune:
            pruned = [rid for folder in folders for rid in ex.prune(folder, recursive=recursive)]
            report = replace(report, pruned_ids=(*report.pruned_ids, *pruned))

    def text() -> None:
        if not files:
            subfolders = not recursive and any(d.is_dir() for f in folders for d in f.iterdir())
            click.echo(f"no images found in {', '.join(str(p) for p in folders) or 'the given paths'}"
                       f"{' (subfolders are left out without --recursive)' if subfolders else ''}")
        else:
            moved = f", {report.moved} moved" if report.moved else ""
            click.echo(f"{report.processed} processed{moved}, {report.skipped} unchanged, {report.failed} failed "
                       f"of {report.total_files} files in {report.processing_time:.1f}s")
        if report.pruned_ids:
            click.echo(f"{len(report.pruned_ids)} removed from the index (files gone)")
        if report.excluded_files:
            click.echo(f"{len(report.excluded_files)} left out: removed as duplicates before "
                       "(imgctx dedupe --undo, or --force, brings them back)")
        for f in report.failed_files:
            click.echo(f"  failed: {f.path}: {f.reason}", err=True)

    _emit(ctx, _cli_json.batch(report), text)


def _search_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--objects, --limit, --min-score and --json, shared by ``search`` and ``similar``."""
    for option in reversed((
        click.option("--objects", help="Only images tagged with any of these (comma-separated)."),
        click.option("--limit", default=10, show_default=True, type=click.IntRange(1, 1000)),
        click.option("--min-score", type=click.FloatRange(0, 1), help="Drop hits scoring below this (0..1)."),
        _json_option,
        _paths_option,
    )):
        f = option(f)
    return f


@cli.command()
@click.argument("text")
@_search_options
@click.option("--explain", is_flag=True, help="Say why each hit matched: tags, caption words, each space's score.")
@click.option("--combine", is_flag=True, help='TEXT is a combined query: 2 * "golden retriever" + pool.jpg - "people".')
@filter_options
@click.pass_obj
def search(ctx: Context, text: str, objects: str | None, limit: int, min_score: float | None, explain: bool,
           combine: bool, filters: dict[str, Any]) -> None:
    """Find images matching TEXT."""
    with ctx.extractor(existing=True) as ex:
        if combine and not hasattr(ex, "search_mixed"):
            raise click.UsageError("--combine works on a local index, not with --server")
        if combine and filters:
            raise click.UsageError("--combine takes no photo filters")
        wanted = normalise_objects(objects)
        if combine:
            hits = ex.search_mixed(text, objects=wanted, limit=limit, min_score=min_score)
        else:  # a server's client does not carry the query on its hits
            hits = ex.search(text, objects=wanted, limit=limit, min_score=min_score, **filters)
            hits = [h if h.query else replace(h, query=text.strip()) for h in hits]
    _emit(ctx, [_cli_json.hit(h, explain) for h in hits], lambda: _print_hits(hits, explain),
          lambda: [h.record.path for h in hits])


@cli.command()
@click.argument("image")
@_search_options
@filter_options
@click.pass_obj
def similar(ctx: Context, image: str, objects: str | None, limit: int, min_score: float | None,
            filters: dict[str, Any]) -> None:
    """Find images that look like IMAGE: a file, or an indexed image's id or id prefix."""
    wanted = normalise_objects(objects)
    with ctx.extractor(existing=True) as ex:
        path = expand(image)
        if not path.is_file() and not looks_like_path(image):  # a stored image: by its stored vector
            hits = ex.search_similar(resolve(ex, image).id, objects=wanted, limit=limit, min_score=min_score,
                                     **filters)
        else:
            hits = ex.search_image(path, objects=wanted, limit=limit, min_score=min_score, **filters)
    _emit(ctx, [_cli_json.hit(h) for h in hits], lambda: _print_hits(hits), lambda: [h.record.path for h in hits])


@cli.command(name="list")
@click.option("--objects", help="Only images tagged with any of these (comma-separated).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(0))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@_json_option
@_paths_option
@filter_options
@click.pass_obj
def list_(ctx: Context, objects: str | None, limit: int, offset: int, filters: dict[str, Any]) -> None:
    """List indexed images."""
    with ctx.extractor(existing=True) as ex:
        records = ex.list(objects=normalise_objects(objects), limit=limit, offset=offset, **filters)
        total = ex.count(objects=normalise_objects(objects), **filters)

    def text() -> None:
        for r in records:
            _print_record(r)
        click.echo(f"{len(records)} shown of {total}")

    _emit(ctx, [_cli_json.image_info(r) for r in records], text, lambda: [r.path for r in records])


@cli.command()
@click.argument("image")
@_json_option
@click.pass_obj
def show(ctx: Context, image: str) -> None:
    """Show everything stored about one image (IMAGE: its id, a unique id prefix, or its path)."""
    with ctx.extractor(existing=True) as ex:
        record = resolve(ex, image)
    data = _cli_json.record(record)

    def text() -> None:
        for key, value in data.items():
            if key == "tags":
                value = ", ".join(f"{t['label']} ({t['score']:.2f})" for t in value)
            elif isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(map(str, value))
            click.echo(f"{key:>13}: {value}")

    _emit(ctx, data, text)


@cli.command()
@click.argument("image")
@click.option("--delete-file", is_flag=True, help="Also delete the image file from disk.")
@_json_option
@click.pass_obj
def delete(ctx: Context, image: str, delete_file: bool) -> None:
    """Remove an image from the index, and optionally from disk (IMAGE: id, id prefix or path)."""
    with ctx.extractor(existing=True) as ex:
        record = ex.delete(resolve(ex, image).id, delete_file=delete_file)
    _emit(ctx, {"deleted": record.id, "path": record.path, "file_deleted": delete_file},
          lambda: click.echo(f"deleted {record.id} ({record.path}){' and its file' if delete_file else ''}"))


@cli.command()
@click.option("--from", "source", required=True, metavar="URI",
              help="Store to copy from, e.g. faiss:./imgctx_db (see docs/stores.md for URIs).")
@click.option("--to", "destination", required=True, metavar="URI",
              help="Store to copy into, e.g. qdrant+http://localhost:6333.")
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(1, 10_000),
              help="Records per batch.")
@_json_option
@click.pass_obj
def migrate(ctx: Context, source: str, destination: str, batch_size: int) -> None:
    """Copy an index, records and vectors, from one store to another (resumable)."""
    from tqdm import tqdm

    from imgctx._migrate import migrate as run_migration
    from imgctx._migrate import open_store

    ctx.local_only("migrate")
    settings = ctx.settings()
    src = open_store(source, settings)
    try:
        dst = open_store(destination, settings)
        try:
            bar = tqdm(total=src.count(), unit="rec", disable=ctx.as_json or None, file=sys.stderr)

            def progress(done: int, total: int) -> None:
                bar.update(done - bar.n)

            try:
                report = run_migration(src, dst, batch_size=batch_size, progress=progress)
            finally:
                bar.close()
        finally:
            dst.close()
    finally:
        src.close()
    _emit(ctx, _cli_json.migration(report), lambda: click.echo(
        f"{report.copied} copied, {report.skipped} already there, of {report.total} records; "
        f"the destination holds {report.destination_count} ({report.seconds:.1f}s)"))


def _print_groups(groups: tuple[DuplicateGroup, ...], kept: str = "keep") -> None:
    for g in groups:
        click.echo(f"{kept}  {g.representative_path}")
        for path, score, exact in zip(g.paths[1:], g.similarity_scores, g.exact or (False,) * len(g.paths), strict=False):
            click.echo(f"      {score:.3f}{' exact' if exact else '      '}  {path}")


_THRESHOLD_HELP = "Combined similarity (0..1) at which two images count as duplicates."


@cli.command()
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--threshold", default=DEFAULT_THRESHOLD, show_default=True, type=click.FloatRange(0, 1), help=_THRESHOLD_HELP)
@click.option("--recursive", "-r", is_flag=True, help="With DIRECTORY: include subfolders.")
@_json_option
@_paths_option
@click.pass_obj
def duplicates(ctx: Context, directory: Path | None, threshold: float, recursive: bool) -> None:
    """Group duplicate images: in the index, or in DIRECTORY (which is not indexed by this).

    With --paths, the duplicates' paths only (not the image kept of each group)."""
    with ctx.extractor(existing=directory is None) as ex:
        report = ex.find_duplicates(threshold=threshold, directory=directory, recursive=recursive)

    def text() -> None:
        _print_groups(report.groups)
        for f in report.failed_files:
            click.echo(f"  failed: {f.path}: {f.reason}", err=True)
        click.echo(f"{_cli_json.duplicates_message(report)} among {report.total_images} images in {report.check_time:.1f}s")

    _emit(ctx, _cli_json.duplicates(report), text, lambda: [p for g in report.groups for p in g.paths[1:]])


@cli.command()
@click.argument("image_a", type=click.Path(path_type=Path))
@click.argument("image_b", type=click.Path(path_type=Path))
@click.option("--threshold", default=DEFAULT_THRESHOLD, show_default=True, type=click.FloatRange(0, 1), help=_THRESHOLD_HELP)
@_json_option
@click.pass_obj
def compare(ctx: Context, image_a: Path, image_b: Path, threshold: float) -> None:
    """Compare two image files: hash distances, embedding cosine, combined similarity, verdict."""
    with ctx.extractor() as ex:
        result = ex.compare(image_a, image_b, threshold=threshold)
    data = _cli_json.comparison(result)

    def text() -> None:
        for key, value in data.items():
            click.echo(f"{key:>20}: {value}")

    _emit(ctx, data, text)


@cli.command()
@click.option("--keep", default="first", show_default=True,
              type=click.Choice(KEEP_POLICIES),
              help="Which image of each group stays.")
@click.option("--threshold", default=REMOVE_THRESHOLD, show_default=True, type=click.FloatRange(0, 1), help=_THRESHOLD_HELP)
@click.option("--apply", "apply_", is_flag=True, help="Really remove (without it, only report).")
@click.option("--delete-files", is_flag=True, help="With --apply: also delete the removed images' files.")
@click.option("--undo", is_flag=True, help="Bring back (index again) every image removed as a duplicate.")
@_json_option
@click.pass_obj
def dedupe(ctx: Context, keep: str, threshold: float, apply_: bool, delete_files: bool, undo: bool) -> None:
    """Remove all but one image of each duplicate group from the index (dry run unless --apply).

    Removed images stay out of the index when their folder is indexed again, until they change,
    `index --force`, or `dedupe --undo`."""
    if delete_files and not apply_:
        raise click.UsageError("--delete-files needs --apply")
    if undo:
        if apply_:
            raise click.UsageError("--undo and --apply do not go together")
        ctx.local_only("dedupe --undo")
        with ctx.extractor(existing=True) as ex:
            restored = ex.restore_duplicates()
        _emit(ctx, _cli_json.batch(restored), lambda: click.echo(
            f"{restored.processed + restored.skipped} images back in the index, {restored.failed} failed"))
        return
    with ctx.extractor(existing=True) as ex:
        report = ex.remove_duplicates(threshold=threshold, dry_run=not apply_, keep=keep,
                                      delete_files=delete_files)

    def text() -> None:
        _print_groups(report.groups)
        for f in report.failed_files:
            click.echo(f"  failed: {f.path}: {f.reason}", err=True)
        n = len(report.removed_ids)
        if report.dry_run:
            click.echo(f"dry run: would remove {n} images from {len(report.groups)} groups (use --apply)")
        else:
            files = f", {len(report.files_deleted)} files deleted" if delete_files else ""
            click.echo(f"removed {n} images from {len(report.groups)} groups{files}")

    _emit(ctx, _cli_json.removal(report), text)


@cli.group()
@_json_option
def models() -> None:
    """Model status, preloading and ONNX export."""


@models.command()
@_json_option
@click.pass_obj
def status(ctx: Context) -> None:
    """Which models are loaded (loads nothing)."""
    from imgctx._extractor import Extractor

    if ctx.remote:
        with ctx.extractor() as client:
            st = client.models.status()
    else:
        st = Extractor(settings=ctx.settings(), store="memory").models.status()
    data = {role: {"name": s.name, "loaded": s.loaded, "load_time": s.load_time, "device": s.device}
            for role, s in st.items()}

    def text() -> None:
        for role, s in st.items():
            click.echo(f"{role:>15}: {s.name} ({'loaded' if s.loaded else 'not loaded'}, {s.device})")

    _emit(ctx, data, text)


@models.command()
@_json_option
@click.pass_obj
def preload(ctx: Context) -> None:
    """Load every model now and print the time each took."""
    from imgctx._extractor import Extractor

    if ctx.remote:
        with ctx.extractor() as client:
            timings = client.models.preload()
    else:
        timings = Extractor(settings=ctx.settings(), store="memory").models.preload()

    def text() -> None:
        for role, seconds in timings.items():
            click.echo(f"{role:>15}: {seconds:.2f}s")

    _emit(ctx, timings, text)


models.add_command(_cli_models.export)


@cli.command()
@_json_option
@click.pass_obj
def plugins(ctx: Context) -> None:
    """List the installed plugins and what each registers."""
    group = click.get_current_context().find_root().command
    if isinstance(group, _Group):
        group._load_plugin_commands()
    registry = load_registry(extra=ctx.settings().load_plugins)
    by_plugin = describe_plugins(registry, getattr(group, "plugin_commands", None) or {})

    def text() -> None:
        for plugin, item in sorted(by_plugin.items()):
            click.echo(plugin)
            for role, names in sorted(item["roles"].items()):
                click.echo(f"  {role}: {', '.join(sorted(names))}")
            if item["presets"]:
                click.echo(f"  presets: {', '.join(sorted(item['presets']))}")
            for group, names in sorted(item["settings"].items()):
                click.echo(f"  settings ({group}): {', '.join(names)}")
            if item["commands"]:
                click.echo(f"  commands: {', '.join(item['commands'])}")

    _emit(ctx, by_plugin, text)


cli.add_command(watch)


def main() -> None:
    cli(prog_name="imgctx")
