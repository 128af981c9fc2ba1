"""Structured logging with a request id on every line (text for people, JSON for log pipelines).

The request id travels in a context variable set by :class:`gateway.web.middleware.RequestIdMiddleware`, so any
logger anywhere in a request's call stack tags its lines without being handed the request. Nothing here ever logs a
token, code, secret or password: callers log identifiers (client ids, token row ids), never bearer values.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

__all__ = ["configure_logging", "request_id_var"]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with time, level, logger, request id, message and any ``extra`` fields."""

    _standard = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"request_id", "message"}

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Route the gateway's logs to stderr in the chosen format; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    root = logging.getLogger("gateway")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
