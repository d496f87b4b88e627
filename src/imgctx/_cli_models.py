"""``imgctx models export``: the preset's models exported to ONNX into the model cache, once.

Kept apart from ``_cli`` (which only attaches it to the ``models`` group). A model that can run
in ONNX Runtime has ``export_onnx()``; the others are listed as skipped.
"""

from __future__ import annotations

import json
from typing import Any

import click


@click.command(name="export")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.pass_obj
def export(ctx: Any, as_json: bool) -> None:
    """Export the preset's models to ONNX into the model cache (IMGCTX_CACHE_DIR); with
    runtime 'auto' (the default) they then run in ONNX Runtime on CPU."""
    from imgctx._extractor import Extractor

    result: dict[str, dict[str, Any]] = {}
    ex = Extractor(settings=ctx.settings(), store="memory")
    try:
        done: dict[int, dict[str, Any]] = {}
        for role, model in ex.components.by_role().items():
            if id(model) not in done:
                exporter = getattr(model, "export_onnx", None)
                paths = {k: str(v) for k, v in exporter().items()} if exporter else {}
                done[id(model)] = {"model": model.name, "exported": paths}
            result[role] = done[id(model)]
    finally:
        ex.close()
    if as_json or ctx.as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for role, item in result.items():
        files = ", ".join(f"{k}: {v}" for k, v in item["exported"].items()) or "skipped (runs in torch only)"
        click.echo(f"{role:>15}: {item['model']}: {files}")
