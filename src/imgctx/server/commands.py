"""The server's command line: ``imgctx serve`` (added through the ``register_commands`` hook,
like a plugin's commands) and ``imgctx-server``. Importable without the server extra, so that
``imgctx serve`` can say what to install."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from imgctx import ServerSettings, Settings, configure_logging, hookimpl
from imgctx.server import require_extra


@click.command(name="serve")
@click.option("--host", help="Interface to listen on (default: IMGCTX_HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: IMGCTX_PORT or 8000).")
@click.option("--preset", "serve_preset", help="Model preset (overrides the global --preset).")
@click.option("--db", "serve_db", type=click.Path(path_type=Path), help="Store folder (overrides the global --db).")
@click.option("--dev", is_flag=True, default=None, help="Development: reload when the code changes; all origins unless IMGCTX_CORS_ORIGINS is set.")
@click.pass_context
def serve_command(click_ctx: click.Context, host: str | None, port: int | None, serve_preset: str | None,
                  serve_db: Path | None, dev: bool | None) -> None:
    """Run the REST and WebSocket service (needs the server extra)."""
    require_extra()
    from imgctx.server.run import serve

    parent = click_ctx.find_root().obj  # the imgctx group's options (--db, --preset, --store)
    base = parent.settings() if parent is not None and hasattr(parent, "settings") else Settings()
    settings = base.with_overrides(db_path=serve_db, preset=serve_preset)
    if parent is None:
        configure_logging(settings)
    serve(settings, ServerSettings().with_overrides(host=host, port=port, dev=dev))


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(serve_command)


def main() -> None:
    """The ``imgctx-server`` console script (the same options as ``imgctx serve``)."""
    serve_command.main(prog_name="imgctx-server")
