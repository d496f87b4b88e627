"""Running the app on uvicorn: ``imgctx serve``, ``imgctx-server``, ``python -m imgctx.server``."""

from __future__ import annotations

import os
from pathlib import Path

from imgctx import ServerSettings, Settings


def serve(settings: Settings | None = None, server_settings: ServerSettings | None = None) -> None:
    """Run the service until interrupted.

    With ``dev`` uvicorn reloads on code changes; it then builds the app in a child process
    from ``create_app_from_env``, so the settings travel as ``IMGCTX_*`` variables.
    """
    import uvicorn

    from imgctx.server.app import create_app

    settings = settings if settings is not None else Settings()
    server = server_settings if server_settings is not None else ServerSettings()
    log_level = settings.log_level.lower()
    if server.dev:
        _export(settings, server)
        uvicorn.run("imgctx.server.app:create_app_from_env", factory=True, reload=True,
                    reload_dirs=[str(Path(__file__).resolve().parent.parent)],
                    host=server.host, port=server.port, log_level=log_level)
    else:
        uvicorn.run(create_app(settings, server_settings=server), host=server.host, port=server.port,
                    log_level=log_level)


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

