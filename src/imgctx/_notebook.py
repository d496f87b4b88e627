"""How records, hits and result lists look in a notebook: short ``repr`` text and, in Jupyter,
``_repr_html_`` cards with thumbnails made from the files on disk, inlined as data URIs (no
network, nothing written)."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from typing import Any

THUMB_SIDE = 160
#: At most this many items of a result list are drawn (the rest are counted).
MAX_CARDS = 60


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def shorten_path(path: str, width: int) -> str:
    """The end of a long path (the file name matters most): ``…/photos/cat.jpg``."""
    return path if len(path) <= width else "…" + path[-(width - 1):]


def record_repr(r: Any) -> str:
    objects = ", ".join(r.objects[:4]) + (", …" if len(r.objects) > 4 else "")
    return (f"ImageRecord(id={r.id[:12]!r}, path={shorten_path(r.path, 60)!r}, {r.size[0]}x{r.size[1]} {r.format}, "
            f"caption={shorten(r.caption, 50)!r}, objects=[{objects}])")


def hit_repr(h: Any) -> str:
    parts = ", ".join(f"{k}={v:.3f}" for k, v in sorted(h.scores.items()))
    return (f"SearchHit(score={h.score:.3f}{' (' + parts + ')' if parts else ''}, "
            f"path={shorten_path(h.record.path, 60)!r}, caption={shorten(h.record.caption, 50)!r})")


def thumbnail_uri(path: str, side: int = THUMB_SIDE) -> str | None:
    """A small JPEG of the image at ``path`` as a data URI, or None when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (side, side))
            thumb = ImageOps.exif_transpose(img.convert("RGB")) or img
            thumb.thumbnail((side, side))
            buf = io.BytesIO()
            thumb.convert("RGB").save(buf, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _card(record: Any, lines: Sequence[str]) -> str:
    uri = thumbnail_uri(record.path) if os.path.isfile(record.path) else None
    picture = (f'<img src="{uri}" style="max-width:{THUMB_SIDE}px;max-height:{THUMB_SIDE}px" alt="">' if uri
               else f'<div style="width:{THUMB_SIDE}px;height:80px;color:#888">(file not readable)</div>')
    text = "".join(f"<div>{html.escape(line)}</div>" for line in lines if line)
    return (f'<div class="imgctx-card" title="{html.escape(record.path)}" style="width:{THUMB_SIDE}px;'
            f'margin:4px;font:11px sans-serif;overflow:hidden">{picture}{text}</div>')


def record_card(r: Any) -> str:
    return _card(r, [r.filename, shorten(r.caption, 80), ", ".join(r.objects[:5])])


def hit_card(h: Any) -> str:
    return _card(h.record, [f"{h.score:.3f}  {h.record.filename}", shorten(h.record.caption, 80)])


def grid(items: Sequence[Any]) -> str:
    """A wrapping grid of cards for records or hits."""
    cards = [hit_card(i) if hasattr(i, "record") else record_card(i) for i in items[:MAX_CARDS]]
    more = len(items) - MAX_CARDS
    tail = f"<div>… and {more} more</div>" if more > 0 else ""
    if not items:
        return "<div>(no results)</div>"
    return f'<div class="imgctx-grid" style="display:flex;flex-wrap:wrap">{"".join(cards)}</div>{tail}'
