"""Logging set up from the settings, as the command line and the server do it."""

from __future__ import annotations

import logging
import sys

from imgctx._settings import Settings


class _NotPrintedYet(logging.Filter):
    """Drops records that a library's own stderr handler prints already (huggingface_hub and
    transformers add one to their loggers), so that no warning shows twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.root:
            if any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
                   for h in logger.handlers):
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


def configure_logging(settings: Settings) -> None:
    """Log at ``settings.log_level`` to stderr (and to ``settings.log_file`` when set), each
    record once, and keep the output clean of transformers' weight-loading progress bars (models
    load without them anyway unless imgctx logs at INFO, see ``LazyModel``)."""
    stderr = logging.StreamHandler(sys.stderr)
    stderr.addFilter(_NotPrintedYet())
    handlers: list[logging.Handler] = [stderr]
    if settings.log_file:
        handlers.append(logging.FileHandler(settings.log_file))
    logging.basicConfig(level=settings.log_level.upper(), handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    hf_logging = sys.modules.get("transformers.utils.logging")  # never imported just for this (slow)
    if hf_logging is not None:
        hf_logging.disable_progress_bar()
