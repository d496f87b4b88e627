"""Logging set up from the settings, as the command line and the server do it."""

from __future__ import annotations

import logging
import sys

from imgctx._settings import Settings


def configure_logging(settings: Settings) -> None:
    """Log at ``settings.log_level`` to stderr (and to ``settings.log_file`` when set), and keep
    the output clean of transformers' weight-loading progress bars."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file:
        handlers.append(logging.FileHandler(settings.log_file))
    logging.basicConfig(level=settings.log_level.upper(), handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
