"""The command line's context: the global options (--db, --preset, --store, --json,
--server), the settings they give, and the Extractor (or remote client) a command works on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from imgctx._errors import ImgctxError
from imgctx._settings import Settings


class Context:
    def __init__(self, db: Path | None = None, preset: str | None = None, store: str | None = None,
                 as_json: bool = False, server: str | None = None, api_key: str | None = None) -> None:
        self.db = db
        self.preset = preset
        self.store = store
        self.as_json = as_json
        self.only_paths = False
        self.server = server
        self.api_key = api_key

    @property
    def remote(self) -> str | None:
        """The server's URL (``--server`` or the ``server_url`` setting), or None: work locally."""
        return self.server or self.settings().server_url

    def local_only(self, command: str) -> None:
        if self.remote:
            raise click.UsageError(f"imgctx {command} works on local files and stores, not with --server")

    def settings(self) -> Settings:
        return Settings().with_overrides(db_path=self.db, preset=self.preset, store=self.store)

    @contextmanager
    def extractor(self, existing: bool = False) -> Iterator[Any]:
        """A local Extractor, or with a server a client of it (``imgctx.connect``); with
        ``existing``, a missing local store is an error instead of a new, empty one."""
        if self.remote:
            from imgctx._client import connect

            with connect(self.remote, api_key=self.api_key) as client:
                yield client
            return
        from imgctx._extractor import Extractor

        settings = self.settings()
        if existing:
            _require_store(settings)
        with Extractor(settings=settings) as ex:
            yield ex


def _require_store(settings: Settings) -> None:
    """Read commands refuse a faiss store that does not exist (other stores cannot be told)."""
    if settings.store == "faiss" and not (settings.db_path / f"{settings.collection_name}.sqlite3").exists():
        raise ImgctxError(f"no index at {settings.db_path}: index a folder first "
                          f"(imgctx --db {settings.db_path} index DIR), or name the index with --db "
                          "or IMGCTX_DB_PATH")
