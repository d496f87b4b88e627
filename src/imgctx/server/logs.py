"""Secrets kept out of the logs: an ``api_key`` in a URL (``/ws?api_key=...``) is redacted from
every record of uvicorn's and the server's loggers, the access log included."""

from __future__ import annotations

import logging
import re

#: Loggers whose records may carry a request's URL.
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "imgctx.server")
_SECRET = re.compile(r"((?:^|[?&;\s\"'])(?:api_key|api-key|x-api-key)=)[^&;\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``/ws?api_key=abc&x=1`` -> ``/ws?api_key=[redacted]&x=1``."""
    return _SECRET.sub(rf"\g<1>{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """Rewrites the message and its arguments in place (the access log's formatter reads the
    arguments, so they stay a tuple of the same shape)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install_redaction() -> None:
    """Add the filter to the loggers that may see a URL (once each; safe to call again)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
