"""Running the app on uvicorn: ``imgctx serve``, ``imgctx-server``, ``python -m imgctx.server``."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from imgctx import ServerSettings, Settings, __version__
from imgctx.server.budget import return_freed_memory


def serve(settings: Settings | None = None, server_settings: ServerSettings | None = None) -> None:
    """Run the service until interrupted.

    With ``dev`` uvicorn reloads on code changes; it then builds the app in a child process
    from ``create_app_from_env``, so the settings travel as ``IMGCTX_*`` variables.
    """
    import uvicorn

    from imgctx.server.app import create_app

    settings = settings if settings is not None else Settings()
    server = server_settings if server_settings is not None else ServerSettings()
    return_freed_memory()
    _exit_cleanly_on_sigterm()
    print(startup_banner(settings, server), flush=True)
    log_level = settings.log_level.lower()
    try:
        if server.dev:
            _export(settings, server)
            uvicorn.run("imgctx.server.app:create_app_from_env", factory=True, reload=True,
                        reload_dirs=[str(Path(__file__).resolve().parent.parent)],
                        host=server.host, port=server.port, log_level=log_level)
        else:
            uvicorn.run(create_app(settings, server_settings=server), host=server.host, port=server.port,
                        log_level=log_level)
    finally:
        print("imgctx server stopped", flush=True)


def _exit_cleanly_on_sigterm() -> None:
    """uvicorn shuts down gracefully on SIGTERM and then raises the signal again under the
    handler it found. With Python's default that kills the process on the spot; this handler
    ends it with ``SystemExit(0)`` instead, so ``serve`` can say that it stopped."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))


def startup_banner(settings: Settings, server: ServerSettings) -> str:
    """What ``imgctx serve`` prints before it starts: where it listens and what it serves."""
    from imgctx.server.paths import PathGuard
    from imgctx.server.security import allowed_hosts

    host = f"[{server.host}]" if ":" in server.host else server.host
    url = f"http://{host}:{server.port}"
    hosts = allowed_hosts(server)
    roots = ", ".join(str(r) for r in PathGuard(server.allowed_roots).roots)
    key = "set (X-API-Key)" if server.api_key is not None else \
        "not set: anyone who can reach this address can use the API"
    return "\n".join([
        f"imgctx {__version__} listening on {url} (API docs: {url}/docs)",
        f"  store: {settings.store} in {settings.db_path} (collection {settings.collection_name})",
        f"  preset: {settings.preset}",
        f"  allowed roots: {roots}",
        f"  answers to hosts: {', '.join(sorted(hosts)) if hosts is not None else 'any'}",
        f"  API key: {key}",
        "  stop with Ctrl+C",
    ])


def _export(settings: Settings, server: ServerSettings) -> None:
    """Hand the settings to the reloading child process through its environment."""
    for model in (settings, server):
        for name, value in model.model_dump().items():
            if value is None:
                continue
            if isinstance(value, (tuple, list)):
                text = ",".join(str(v) for v in value)
            elif hasattr(value, "get_secret_value"):
                text = value.get_secret_value()
            else:
                text = str(value)
            os.environ[f"IMGCTX_{name.upper()}"] = text

